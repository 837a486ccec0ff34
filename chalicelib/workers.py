"""Entry points of the non-HTTP Lambda functions: the SQS dispatcher, the webhook deliverer, the
publisher on the table's stream and the scheduled sweeper (their use cases live in
``services.dispatch``, ``services.webhook_delivery``, ``services.publish_stream`` and
``services.sweeper``).

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


class RetryLaterError(Exception):
    """A webhook delivery failed; its message stays invisible until its next attempt is due."""


def deliver_webhooks(event: Any) -> dict[str, Any]:
    """Chalice ``on_sqs_message`` handler of the webhook queue (FIFO), with powertools'
    SqsFifoPartialProcessor: a record whose delivery failed is reported failed with its visibility
    set to the delivery's backoff, and the later records of its group (the same webhook and run) in
    the batch are reported failed without being tried, visible again at once: SQS returns none of
    them before the failed one, so the group resumes in order when its backoff is over. Other
    groups go on. A record the deliverer crashed on keeps the queue's visibility timeout."""
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
    from pydantic import ValidationError

    from .domain.messages import WebhookMessage

    services = get_services()
    context = getattr(event, "context", None)
    payload = event.to_dict() if hasattr(event, "to_dict") else event
    receipts = {r["messageId"]: r["receiptHandle"] for r in payload.get("Records", [])}
    tried: set[str] = set()

    def handle(record: Any) -> None:
        tried.add(record.message_id)
        try:
            message = WebhookMessage.model_validate_json(record.body)
        except ValidationError:
            log.warning("dropped a webhook message that is not one: %s", record.body[:200])
            return
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(run_id=message.run_id, webhook_id=message.webhook_id, seq=message.seq)
        wait = services.webhook_deliverer.handle(message)
        if wait is not None:
            services.webhook_queue.delay(record.receipt_handle, wait)
            raise RetryLaterError(f"delivery {message.delivery_id} failed; next attempt in {wait} s")

    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    # A batch whose every record failed is reported like any other (each with its own visibility),
    # not raised: raising would fail the invocation and undo the backoffs set above.
    processor.raise_on_entire_batch_failure = False
    result = process_partial_response(event=payload, record_handler=handle, context=context, processor=processor)
    for failure in result.get("batchItemFailures", []):
        if failure["itemIdentifier"] not in tried and failure["itemIdentifier"] in receipts:
            try:
                services.webhook_queue.delay(receipts[failure["itemIdentifier"]], 0)
            except Exception:   # it comes back after the queue's visibility timeout instead
                log.warning("could not release webhook message %s", failure["itemIdentifier"], exc_info=True)
    return result


def publish_from_stream(event: Any) -> dict[str, int]:
    """Chalice ``on_dynamodb_record`` handler of the table's stream (filtered to new publish
    records): delivers each through the outbox. A record whose delivery fails stays in the table
    for the sweeper; the batch is not failed for it (a retry of the batch would only publish its
    other records again)."""
    payload = event.to_dict() if hasattr(event, "to_dict") else event
    return get_services().publish_stream.handle(payload.get("Records", []))


def sweep_once(limit: int = 200) -> dict[str, Any]:
    """The scheduled sweeper's entry point (services.sweeper)."""
    return get_services().sweeper.sweep_once(limit)
