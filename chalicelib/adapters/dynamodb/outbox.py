"""Outbox records: callbacks written with the change that owes them, delivered after commit.

Pending records are the sparse index gsi3 (``OUTBOX`` / ``{created_at}#{id}``), oldest first, for
the sweeper; a delivered record is deleted.
"""

from __future__ import annotations

from typing import Any, Optional

from . import keyspace
from .table import Table


class OutboxRepository:
    def __init__(self, table: Table):
        self.table = table

    def put_op(self, record: Any) -> dict[str, Any]:
        """The write of a record (a ``domain.messages`` outbox record), pending until it is delivered."""
        body = record.model_dump(mode="json")
        item = {**keyspace.outbox(body["id"]), **keyspace.outbox_entry(body["created_at"], body["id"]),
                "type": "outbox", **body}
        return self.table.put_op(item, "attribute_not_exists(pk)")

    def pending(self, limit: int, written_before: Optional[str] = None) -> list[dict[str, Any]]:
        """The oldest pending records; with ``written_before`` (a timestamp) only those written earlier."""
        condition = ("gsi3sk", "<", written_before) if written_before else None
        items, _ = self.table.query_page(index="gsi3", partition_name="gsi3pk", partition=keyspace.OUTBOX_PARTITION,
                                         limit=limit, cursor=None, sort_condition=condition)
        return items

    def mark_published(self, record_id: str) -> None:
        """A ``PublishEvents`` record whose events are on the bus: a retry only fans out to webhooks."""
        self.table.write(self.table.update_op(keyspace.outbox(record_id), "SET bus_done = :done",
                                              condition="attribute_exists(pk)", values={":done": True}))

    def delete(self, record_id: str) -> None:
        self.table.delete(keyspace.outbox(record_id))


__all__ = ["OutboxRepository"]
