"""Publishing off the request path: the table's DynamoDB Stream feeds the outbox's publish records
to the ``publish`` function (transactional outbox + change data capture).

A commit writes its ``PublishEvents`` record in its own transaction (``AuditLog.commit``) and
returns; the record's INSERT reaches the publish function within about a second (Lambda's event
source mapping on the stream, with ``PUBLISH_FILTER`` as its filter; the local stack's
``StreamPump``). The function delivers each record through the same ``Outbox`` the sweeper uses
(``services.events``: EventBridge, then the webhook fan-out), which deletes it. Delivery is
idempotent, so a record both the consumer and the sweeper deliver is harmless; a record whose
delivery fails is left in the table, where the sweeper retries it after its grace period. The
batch itself never fails for one record: only a bug (an exception outside a delivery) fails it,
and the event source retries it a bounded number of times, halving the batch.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from ..adapters.dynamodb.codec import deserialize
from ..domain.messages import PublishEvents, parse_outbox_record
from .outbox import Outbox

logger = logging.getLogger("baton.publish")

# The event source mapping's filter (infra/resources.yaml FilterCriteria, the local StreamPump):
# only new outbox records that publish. Their removal once delivered, the bus_done mark (MODIFY)
# and every other item of the table never invoke the function.
PUBLISH_FILTER: dict[str, Any] = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"call": {"S": ["publish"]}}}}


def is_publish_insert(record: dict[str, Any]) -> bool:
    """Whether a stream record matches ``PUBLISH_FILTER`` (what Lambda's filter lets through)."""
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    return record.get("eventName") == "INSERT" and (image.get("call") or {}).get("S") == "publish"


class StreamConsumer:
    def __init__(self, outbox: Outbox):
        self.outbox = outbox

    def handle(self, records: Iterable[dict[str, Any]]) -> dict[str, int]:
        """Deliver the publish records of a batch of stream records (Lambda's ``Records``).
        Returns how many were delivered, left for the sweeper, and skipped (not ours)."""
        delivered = left = skipped = 0
        for record in records:
            if not is_publish_insert(record):
                skipped += 1
                continue
            parsed = parse_outbox_record(deserialize(record["dynamodb"]["NewImage"]))
            if not isinstance(parsed, PublishEvents):
                logger.warning("stream record %s is no publish record; skipped", record.get("eventID"))
                skipped += 1
                continue
            if self.outbox.deliver([parsed]):
                delivered += 1
            else:   # Outbox.deliver logged why; the record stays in the table for the sweeper
                left += 1
        if delivered or left:
            logger.info("stream batch: %d publication(s) delivered, %d left for the sweeper", delivered, left)
        return {"delivered": delivered, "left": left, "skipped": skipped}


__all__ = ["PUBLISH_FILTER", "StreamConsumer", "is_publish_insert"]
