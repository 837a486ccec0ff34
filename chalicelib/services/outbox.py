"""Callbacks that must never be lost.

A use case that owes Step Functions (or the dispatch queue) a call writes an outbox record in the
same DynamoDB transaction as its change, then delivers it and deletes the record. If delivery
fails the record stays, and the scheduled sweeper delivers it later. Delivery is idempotent:
a token the execution no longer waits for is simply dropped.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Iterable, Optional

from ..adapters.dynamodb import Repositories
from ..adapters.stepfunctions import DispatchQueue, GoneError, StepFunctions
from ..domain import clock, ids

logger = logging.getLogger("baton.outbox")


def record(call: str, **params: Any) -> dict[str, Any]:
    """A new outbox record: ``call`` is task_success | task_heartbeat | start | stop | enqueue."""
    return {"id": f"{ids.OUTBOX}_{secrets.token_hex(10)}", "created_at": clock.now_iso(), "call": call, **params}


class Outbox:
    def __init__(self, repos: Repositories, sfn: Optional[StepFunctions], queue: Optional[DispatchQueue]):
        self.repos = repos
        self.sfn = sfn
        self.queue = queue

    def operations(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.repos.outbox.put_op(r) for r in records]

    def deliver(self, records: Iterable[dict[str, Any]]) -> int:
        """Deliver now; a record that fails stays for the sweeper. Returns how many were delivered."""
        delivered = 0
        for rec in records:
            try:
                self._call(rec)
            except GoneError as gone:
                logger.info("outbox %s dropped: %s (the execution moved on)", rec["id"], gone)
            except Exception:  # network, throttling: keep the record, the sweeper retries
                logger.warning("outbox %s not delivered yet (%s)", rec["id"], rec["call"], exc_info=True)
                continue
            self.repos.outbox.delete(rec["id"])
            delivered += 1
        return delivered

    def sweep(self, limit: int = 100) -> int:
        return self.deliver(self.repos.outbox.pending(limit))

    def _call(self, rec: dict[str, Any]) -> None:
        call = rec["call"]
        if call == "enqueue":
            if self.queue:
                self.queue.send(rec["body"])
            return
        if self.sfn is None:
            return
        if call == "task_success":
            self.sfn.success(rec["token"], rec["output"])
        elif call == "task_heartbeat":
            self.sfn.heartbeat(rec["token"])
        elif call == "start":
            self.sfn.start(rec["machine"], rec["name"], rec["input"])
        elif call == "stop":
            self.sfn.stop(rec["arn"], rec.get("cause", "stopped by Baton"))
        else:
            raise ValueError(f"unknown outbox call {call!r}")
