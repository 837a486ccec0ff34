"""The audited change: the one writer of the run's audit log.

``AuditLog.commit`` applies a change's operations together with the run's counters and the next
audit event (its sequence number taken by a condition on the run item) in one TransactWriteItems.
What a change does to its run besides counters is a ``RunEffect`` its caller computes from the run
as read. Events are read back in order with ``events_after``.

Events out: when the stack publishes its events (``publishes`` set, by ``bootstrap``), the same
transaction also writes an outbox record (``PublishEvents``) with the commit's event. The table's
DynamoDB Stream carries the record's INSERT to the publish function (``services.publish_stream``),
off the request path; with ``publisher`` set as well (``BATON_EVENTS_DELIVERY=request``) the commit
hands the record to it once the transaction succeeded. Either way a record whose delivery failed
stays for the sweeper. A commit has at most 97 operations of its own: with the run's update, the
event and the record, 100, DynamoDB's limit (the largest, a chunk of cancelled tasks, has 77).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from ...domain import clock
from ...domain.entities import Event
from ...domain.errors import BatonError, ConflictError, NotFoundError
from . import keyspace
from .codec import attribute_value, deserialize, serialize
from .outbox import OutboxRepository
from .table import Table, TransactionCancelledError

if TYPE_CHECKING:
    from ...domain.messages import PublishEvents

logger = logging.getLogger("baton.audit")


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


def _after_image(run_item: dict[str, Any], effect: RunEffect, counters: dict[str, int],
                 event: dict[str, Any]) -> dict[str, Any]:
    """The run item as the committed transaction left it (what its update expression did)."""
    item = {**run_item, **effect.set, "event_seq": event["seq"], "updated_at": event["at"]}
    for attribute in effect.remove:
        item.pop(attribute, None)
    for name, delta in counters.items():
        if delta:
            item[name] = item.get(name, 0) + delta
    return item


def item_to_event(item: dict[str, Any]) -> Event:
    return Event(**{k: v for k, v in item.items() if k in Event.model_fields})


class RunHints:
    """The run items this process committed last, by run id: a few hundred, for half a minute.

    ``event_seq`` is the run item's version (every change of the run goes through ``commit`` and
    takes the next number), so a commit can use a remembered item instead of reading it: its
    condition ``event_seq = :prev`` holds only if the run is still exactly as remembered. When it
    was changed meanwhile, the cancelled transaction returns the run as it is (ALL_OLD) and the
    commit goes on from that, so a stale hint costs what the read would have cost, never more calls.
    """

    def __init__(self, size: int = 512, ttl_seconds: float = 30.0):
        self.size = size
        self.ttl_seconds = ttl_seconds
        self._items: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run_id: str) -> Optional[dict[str, Any]]:
        with self._lock:
            entry = self._items.get(run_id)
            if entry is None or time.monotonic() - entry[0] > self.ttl_seconds:
                self._items.pop(run_id, None)
                return None
            return copy.deepcopy(entry[1])

    def put(self, run_id: str, item: dict[str, Any]) -> None:
        with self._lock:
            self._items[run_id] = (time.monotonic(), copy.deepcopy(item))
            self._items.move_to_end(run_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def drop(self, run_id: str) -> None:
        with self._lock:
            self._items.pop(run_id, None)


class AuditLog:
    def __init__(self, table: Table, outbox: OutboxRepository, hints: Optional[RunHints] = None):
        self.table = table
        self.outbox = outbox
        self.hints = hints or RunHints()
        # publishes: commits write a PublishEvents record (False: the stack publishes nothing).
        # publisher: delivers that record right after the commit (services.outbox); None: the
        # table's stream consumer delivers it (services.publish_stream), off the request path.
        self.publishes = False
        self.publisher: Optional[Callable[[PublishEvents], Any]] = None

    def publication(self, project_id: str, run_id: str, event: dict[str, Any]) -> Optional[PublishEvents]:
        """The outbox record that publishes ``event`` (None when the stack publishes nothing)."""
        if not self.publishes or not project_id:
            return None
        from ...domain.events import published   # loaded by stacks that publish, on their first commit
        from ...domain.messages import PublishEvents

        return PublishEvents(project_id=project_id, run_id=run_id, events=[published(event, project_id, run_id)])

    def announce(self, record: Optional[PublishEvents]) -> None:
        """Deliver a committed record now when the request delivers (``publisher``); whatever goes
        wrong, the record stays for the sweeper. Else the stream consumer delivers it."""
        if record is None or self.publisher is None:
            return
        try:
            self.publisher(record)
        except Exception:   # the change is committed: never fail it for its publication
            logger.warning("publishing %s of run %s failed; the sweeper retries", record.id, record.run_id,
                           exc_info=True)

    def commit(self, *, run_id: str, actor: str, action: str, entity: str, data: dict[str, Any],
               operations: Sequence[dict[str, Any]] = (), counters: Optional[dict[str, int]] = None,
               run_item: Optional[dict[str, Any]] = None,
               on_run: Optional[Callable[[dict[str, Any]], Any]] = None,
               max_attempts: int = 25) -> "Committed":
        """Apply ``operations`` with the run's counters and the next audit event, atomically.

        The event's sequence number is the run's ``event_seq + 1``, claimed by a condition on the
        run item; losing that race goes on from the run as the cancelled transaction returned it.
        ``run_item`` is the caller's own read of the run; without it the commit starts from the
        process's hint (``RunHints``), else reads the run. A failed condition on one of
        ``operations`` raises ConflictError (the caller's read is stale). ``on_run`` sees the run
        as read: it may raise to refuse (wrong status) or return a RunEffect (or a dict of fields
        to set) that changes the run item and adds operations to the same transaction.
        """
        fresh = run_item is not None
        if run_item is None:
            run_item = self.hints.get(run_id)
        for _attempt in range(max_attempts):
            if run_item is None:
                run_item, fresh = self.table.get(keyspace.run(run_id)), True
                if run_item is None:
                    raise NotFoundError("run not found")
            try:
                effect = on_run(run_item) if on_run else None
            except BatonError:
                if fresh:
                    raise
                run_item = None   # refused on a remembered run: decide on the run as it is
                continue
            if isinstance(effect, dict):
                effect = RunEffect(set=effect)
            effect = effect or RunEffect()
            all_counters = dict(counters or {})
            for name, delta in effect.counters.items():
                all_counters[name] = all_counters.get(name, 0) + delta
            event, run_update = self._event_and_run_update(run_id, run_item, effect, all_counters,
                                                           actor=actor, action=action, entity=entity, data=data)
            effect_ops = list(effect.operations) + [self.outbox.put_op(r) for r in effect.outbox]
            ops = list(operations) + effect_ops + [run_update, self.table.put_op(event, "attribute_not_exists(pk)")]
            publication = self.publication(str(run_item.get("project_id", "")), run_id, event)
            if publication is not None:
                ops.append(self.outbox.put_op(publication))
            try:
                self.table.transact(ops)
            except TransactionCancelledError as cancelled:
                run_index = len(operations) + len(effect_ops)
                if any(cancelled.reasons[i] == "ConditionalCheckFailed" for i in range(len(operations))):
                    raise ConflictError("the item changed since it was read; read it again and retry",
                                        code="stale_version") from None
                run_changed = cancelled.reasons[run_index] == "ConditionalCheckFailed"
                if not run_changed and any(cancelled.reasons[i] == "ConditionalCheckFailed"
                                           for i in range(len(operations), run_index)):
                    raise ConflictError("the item changed since it was read; read it again and retry",
                                        code="stale_version") from None
                # Someone else took the sequence number (the run as it is now came back with the
                # cancellation), or a transient conflict (read it again).
                self.hints.drop(run_id)
                run_item, fresh = (cancelled.items[run_index], True) if run_changed else (None, False)
                continue
            self.hints.put(run_id, _after_image(run_item, effect, all_counters, event))
            self.announce(publication)
            return Committed(event=event, effect=effect, run_item=run_item)
        raise ConflictError("the run is too busy right now; retry shortly", code="busy")

    def _event_and_run_update(self, run_id: str, run_item: dict[str, Any], effect: RunEffect,
                              counters: dict[str, int], *, actor: str, action: str, entity: str,
                              data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
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
        for i, (counter, delta) in enumerate(counters.items()):
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
            "ExpressionAttributeValues": {k: attribute_value(v) for k, v in values.items()},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
        return event, run_update

    def events_after(self, run_id: str, after: int, limit: int) -> list[Event]:
        response = self.table.client.query(
            TableName=self.table.name, ConsistentRead=True, Limit=limit,
            KeyConditionExpression="pk = :p AND sk BETWEEN :from AND :to",
            ExpressionAttributeValues={":p": attribute_value(keyspace.run(run_id)["pk"]),
                                       ":from": attribute_value(keyspace.event_sk(after + 1)),
                                       ":to": attribute_value(keyspace.event_sk(10 ** 12 - 1))})
        return [item_to_event(deserialize(i)) for i in response.get("Items", [])]


__all__ = ["AuditLog", "Committed", "RunEffect", "RunHints", "item_to_event"]
