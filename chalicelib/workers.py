"""Entry points of the non-HTTP Lambda functions: the SQS dispatcher and the scheduled sweeper.

The dispatcher processes a batch with powertools' BatchProcessor and reports partial failures,
so only failed messages return to the queue (and reach the DLQ after maxReceiveCount). Stage,
gate and expiry messages also pass through powertools idempotency when its table is configured;
the handlers are idempotent on their own as well (conditional writes keyed by dispatch number).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .bootstrap import get_services
from .domain import clock
from .domain.models import Stage
from .observability import logger

log = logging.getLogger("baton.workers")

_idempotent_handler = None
NOT_DEDUPLICATED = {"fill", "cancel"}   # asked again (a slot freed up, more tasks to cancel); idempotent on their own


def _handler_with_idempotency():
    """The message handler, wrapped by powertools idempotency when a table is configured."""
    global _idempotent_handler
    if _idempotent_handler is not None:
        return _idempotent_handler
    services = get_services()
    table = services.settings.idempotency_table

    def handle(message: dict[str, Any]) -> dict[str, Any]:
        get_services().dispatch.handle(message)
        return {"handled": message.get("kind")}

    if not table:
        _idempotent_handler = handle
        return handle
    from aws_lambda_powertools.utilities.idempotency import (DynamoDBPersistenceLayer, IdempotencyConfig,
                                                             idempotent_function)

    persistence = DynamoDBPersistenceLayer(table_name=table)
    config = IdempotencyConfig(expires_after_seconds=24 * 3600)
    wrapped = idempotent_function(data_keyword_argument="message", persistence_store=persistence,
                                  config=config)(handle)
    _idempotent_handler = (config, wrapped, handle)
    return _idempotent_handler


def handle_message(body: str, context: Any = None) -> None:
    message = json.loads(body)
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(task_id=message.get("task_id"), run_id=message.get("run_id"),
                                   message_kind=message.get("kind"), dispatch=message.get("dispatch"))
    handler = _handler_with_idempotency()
    if isinstance(handler, tuple):
        config, wrapped, plain = handler
        if message.get("kind") in NOT_DEDUPLICATED:
            plain(message=message)
            return
        if context is not None:
            config.register_lambda_context(context)
        wrapped(message=message)
        return
    handler(message=message)


def dispatch_batch(event: Any) -> dict[str, Any]:
    """Chalice ``on_sqs_message`` handler: one record at a time, failures reported per record."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    context = getattr(event, "context", None)
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(event=event.to_dict(), processor=processor, context=context,
                                    record_handler=lambda record: handle_message(record.body, context))


def _all_projects(services: Any):
    cursor = None
    while True:
        page = services.store.list_projects(200, cursor)
        yield from page.items
        if not page.next_cursor:
            return
        cursor = page.next_cursor


def sweep_once(limit: int = 200) -> dict[str, Any]:
    """Deliver callbacks left in the outbox, re-dispatch (or re-queue) jobs whose lease expired,
    and report tasks that waited unclaimed past their run's queue timeout."""
    services = get_services()
    delivered = services.outbox.sweep(limit)
    requeued = 0
    now = clock.now_iso()
    for project in _all_projects(services):
        for stage in Stage:
            if stage in (Stage.none, Stage.complete):
                continue
            for task in services.store.expired_leases(project.id, stage.value, now, 50):
                if services.tasks.expire_lease(task) is not None:
                    requeued += 1
    reported = sum(1 for task in services.store.overdue_waits(now, limit) if services.tasks.report_waiting(task))
    result = {"delivered": delivered, "requeued": requeued, "waiting_reported": reported}
    logger.info("sweep done", extra=result)
    return result
