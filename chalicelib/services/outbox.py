"""Callbacks that must never be lost.

A use case that owes Step Functions (or the dispatch queue) a call writes an outbox record
(``domain.messages``: answer a token, start or stop an execution, enqueue a message) in the same
DynamoDB transaction as its change, then delivers it and deletes the record. If delivery fails
the record stays, and the scheduled sweeper delivers it later. Delivery is idempotent: a token the
execution no longer waits for is simply dropped. Every commit's audit event is published the same
way (``PublishEvents``, written by ``AuditLog.commit``, delivered by ``services.events``), except
that the request does not deliver it: the table's stream hands it to the publish function
(``services.publish_stream``), which calls ``deliver`` (unless ``BATON_EVENTS_DELIVERY=request``).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Optional

from ..adapters.dynamodb import Repositories
from ..adapters.stepfunctions import DispatchQueue, GoneError, StepFunctions
from ..domain import clock
from ..domain.messages import (AnswerToken, Enqueue, OutboxRecord, PublishEvents, StartExecution, StopExecution,
                               parse_outbox_record)

logger = logging.getLogger("baton.outbox")


class Outbox:
    def __init__(self, repos: Repositories, sfn: Optional[StepFunctions], queue: Optional[DispatchQueue],
                 publisher: Optional[Callable[[], Any]] = None):
        self.repos = repos
        self.sfn = sfn
        self.queue = queue
        self._publisher = publisher   # the EventPublisher, built on first use (services.events)

    def operations(self, records: Iterable[OutboxRecord]) -> list[dict[str, Any]]:
        return [self.repos.outbox.put_op(r) for r in records]

    def deliver(self, records: Iterable[OutboxRecord]) -> int:
        """Deliver now; a record that fails stays for the sweeper. Returns how many were delivered."""
        delivered = 0
        for rec in records:
            try:
                self._call(rec)
            except GoneError as gone:
                logger.info("outbox %s dropped: %s (the execution moved on)", rec.id, gone)
            except Exception:  # network, throttling: keep the record, the sweeper retries
                logger.warning("outbox %s not delivered yet (%s)", rec.id, rec.call, exc_info=True)
                continue
            self.repos.outbox.delete(rec.id)
            delivered += 1
        return delivered

    def sweep(self, limit: int = 100, min_age_seconds: float = 0) -> int:
        """Deliver what is still pending, oldest first; records younger than ``min_age_seconds`` are
        left to the request that wrote them (it delivers right after its commit), or, for publish
        records, to the stream consumer."""
        pending = []
        written_before = clock.plus_seconds(clock.now_iso(), -min_age_seconds) if min_age_seconds else None
        for item in self.repos.outbox.pending(limit, written_before):
            record = parse_outbox_record(item)
            if record is None:   # written by an older version with a call this one no longer makes
                logger.warning("outbox %s has no known call (%s); removed", item.get("id"), item.get("call"))
                self.repos.outbox.delete(str(item.get("id")))
                continue
            pending.append(record)
        return self.deliver(pending)

    def _call(self, rec: OutboxRecord) -> None:
        if isinstance(rec, PublishEvents):
            if self._publisher is not None:   # else this stack publishes nothing: the record is dropped
                self._publisher().deliver(rec)
            return
        if isinstance(rec, Enqueue):
            if self.queue:
                self.queue.send(rec.body.model_dump(mode="json"))
            return
        if self.sfn is None:
            return
        if isinstance(rec, AnswerToken):
            self.sfn.success(rec.token, rec.output)
        elif isinstance(rec, StartExecution):
            self.sfn.start(rec.machine, rec.name, rec.input)
        elif isinstance(rec, StopExecution):
            self.sfn.stop(rec.arn, rec.cause)


__all__ = ["Outbox"]
