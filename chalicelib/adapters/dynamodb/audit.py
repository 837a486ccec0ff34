"""The audited change: the one writer of the run's audit log.

``AuditLog.commit`` applies a change's operations together with the run's counters and the next
audit event (its sequence number taken by a condition on the run item) in one TransactWriteItems.
What a change does to its run besides counters is a ``RunEffect`` its caller computes from the run
as read. Events are read back in order with ``events_after``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from ...domain import clock
from ...domain.entities import Event
from ...domain.errors import ConflictError, NotFoundError
from . import keyspace
from .codec import attribute_value, deserialize, serialize
from .outbox import OutboxRepository
from .table import Table, TransactionCancelledError


@dataclass
class RunEffect:
    """What a change does to its run besides counters: fields set or removed, more operations
    (an approval) in the same transaction, extra event data, and outbox records (written in the
    transaction, delivered by the caller once it succeeded)."""

    set: dict[str, Any] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    event_data: dict[str, Any] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Committed:
    event: dict[str, Any]
    effect: RunEffect
    run_item: dict[str, Any]


def item_to_event(item: dict[str, Any]) -> Event:
    return Event(**{k: v for k, v in item.items() if k in Event.model_fields})


class AuditLog:
    def __init__(self, table: Table, outbox: OutboxRepository):
        self.table = table
        self.outbox = outbox

    def commit(self, *, run_id: str, actor: str, action: str, entity: str, data: dict[str, Any],
               operations: Sequence[dict[str, Any]] = (), counters: Optional[dict[str, int]] = None,
               run_item: Optional[dict[str, Any]] = None,
               on_run: Optional[Callable[[dict[str, Any]], Any]] = None,
               max_attempts: int = 25) -> "Committed":
        """Apply ``operations`` with the run's counters and the next audit event, atomically.

        The event's sequence number is the run's ``event_seq + 1``, claimed by a condition on the
        run item; losing that race re-reads the run and tries again. A failed condition on one
        of ``operations`` raises ConflictError (the caller's read is stale). ``on_run`` sees the run
        as read: it may raise to refuse (wrong status) or return a RunEffect (or a dict of fields
        to set) that changes the run item and adds operations to the same transaction.
        """
        for _attempt in range(max_attempts):
            if run_item is None:
                run_item = self.table.get(keyspace.run(run_id))
                if run_item is None:
                    raise NotFoundError("run not found")
            effect = on_run(run_item) if on_run else None
            if isinstance(effect, dict):
                effect = RunEffect(set=effect)
            effect = effect or RunEffect()
            previous = int(run_item.get("event_seq", 0))
            now = clock.now_iso()
            event = {**keyspace.event(run_id, previous + 1), "type": "event", "seq": previous + 1, "at": now,
                     "actor": actor, "action": action, "entity": entity, "data": {**data, **effect.event_data}}
            update_parts = ["#seq = :seq", "#updated = :now"]
            names = {"#seq": "event_seq", "#updated": "updated_at"}
            values: dict[str, Any] = {":seq": previous + 1, ":prev": previous, ":now": now}
            for i, (attribute, value) in enumerate(effect.set.items()):
                names[f"#r{i}"] = attribute
                values[f":r{i}"] = value
                update_parts.append(f"#r{i} = :r{i}")
            add_parts = []
            all_counters = dict(counters or {})
            for name, delta in effect.counters.items():
                all_counters[name] = all_counters.get(name, 0) + delta
            for i, (counter, delta) in enumerate(all_counters.items()):
                if delta:
                    names[f"#c{i}"] = counter
                    values[f":c{i}"] = delta
                    add_parts.append(f"#c{i} :c{i}")
            remove_parts = []
            for i, attribute in enumerate(effect.remove):
                names[f"#d{i}"] = attribute
                remove_parts.append(f"#d{i}")
            expression = "SET " + ", ".join(update_parts)
            if add_parts:
                expression += " ADD " + ", ".join(add_parts)
            if remove_parts:
                expression += " REMOVE " + ", ".join(remove_parts)
            run_update = {"Update": {
                "TableName": self.table.name, "Key": serialize(keyspace.run(run_id)), "UpdateExpression": expression,
                "ConditionExpression": "#seq = :prev", "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {k: attribute_value(v) for k, v in values.items()}}}
            effect_ops = list(effect.operations) + [self.outbox.put_op(r) for r in effect.outbox]
            ops = list(operations) + effect_ops + [run_update, self.table.put_op(event, "attribute_not_exists(pk)")]
            try:
                self.table.transact(ops)
                return Committed(event=event, effect=effect, run_item=run_item)
            except TransactionCancelledError as cancelled:
                for index in range(len(operations) + len(effect_ops)):
                    if cancelled.reasons[index] == "ConditionalCheckFailed":
                        raise ConflictError("the item changed since it was read; read it again and retry",
                                            code="stale_version") from None
                run_item = None  # someone else took the sequence number, or a transient conflict
        raise ConflictError("the run is too busy right now; retry shortly", code="busy")

    def events_after(self, run_id: str, after: int, limit: int) -> list[Event]:
        response = self.table.client.query(
            TableName=self.table.name, ConsistentRead=True, Limit=limit,
            KeyConditionExpression="pk = :p AND sk BETWEEN :from AND :to",
            ExpressionAttributeValues={":p": attribute_value(keyspace.run(run_id)["pk"]),
                                       ":from": attribute_value(keyspace.event_sk(after + 1)),
                                       ":to": attribute_value(keyspace.event_sk(10 ** 12 - 1))})
        return [item_to_event(deserialize(i)) for i in response.get("Items", [])]


__all__ = ["AuditLog", "Committed", "RunEffect", "item_to_event"]
