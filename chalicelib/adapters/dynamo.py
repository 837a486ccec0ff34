"""The DynamoDB store: entities to items and back, and the transactions that change them.

Every read is a GetItem or a Query; every write is conditional; a change that touches several
items (task + run counters + audit event) is one TransactWriteItems. Keys come from ``keys``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable, Optional, Sequence

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from ..domain import clock
from ..domain.errors import ConflictError, NotFoundError, UnauthenticatedError
from ..domain.models import ApiKey, Event, Project, Run, Task, TaskStatus
from ..domain.progress import progress_from_counters
from . import keys
from .pagination import decode_cursor, encode_cursor

_SER = TypeSerializer()
_DESER = TypeDeserializer()

TRANSACTION_LIMIT = 100
KEY_NAMES = frozenset({"pk", "sk"})
GSI1_NAMES = frozenset({"pk", "sk", "gsi1pk", "gsi1sk"})
GSI4_NAMES = frozenset({"pk", "sk", "gsi4pk", "gsi4sk"})


def _to_dynamo(value: Any) -> Any:
    """JSON-shaped Python to what TypeSerializer accepts (floats become Decimal, None dropped)."""
    return json.loads(json.dumps(value), parse_float=Decimal)


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in _to_dynamo(item).items() if v is not None}
    return {k: _SER.serialize(v) for k, v in clean.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_plain(v) for v in value]
    return value


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_DESER.deserialize(v)) for k, v in item.items()}


def _av(value: Any) -> dict[str, Any]:
    return _SER.serialize(_to_dynamo(value))


class TransactionCancelled(Exception):
    """A transaction was cancelled; ``reasons`` holds one code per item (``None`` when fine)."""

    def __init__(self, reasons: list[str]):
        super().__init__(", ".join(reasons))
        self.reasons = reasons

    def failed(self, index: int) -> bool:
        return self.reasons[index] not in ("None", None, "")

    @property
    def only_conflicts(self) -> bool:
        return all(r in ("None", None, "", "TransactionConflict") for r in self.reasons)


# --------------------------------------------------------------------------- item mapping

def project_to_item(project: Project) -> dict[str, Any]:
    return {**keys.project(project.id), **keys.project_list_entry(project.id), "type": "project",
            **project.model_dump(mode="json")}


def item_to_project(item: dict[str, Any]) -> Project:
    return Project(**{k: v for k, v in item.items() if k in Project.model_fields})


def run_to_item(run: Run, counters: Optional[dict[str, int]] = None, event_seq: int = 0) -> dict[str, Any]:
    body = {**run.model_dump(mode="json", exclude={"progress"}), "pinned_role_versions": run.pinned_role_versions}
    return {**keys.run(run.id), **keys.run_list_entry(run.project_id, run.id), "type": "run",
            **body, **(counters or {}), "event_seq": event_seq}


def item_to_run(item: dict[str, Any]) -> Run:
    run = Run(**{k: v for k, v in item.items() if k in Run.model_fields and k != "progress"})
    return run.model_copy(update={"progress": progress_from_counters(item)})


INTERNAL_TASK_FIELDS = tuple(name for name, field in Task.model_fields.items() if field.exclude)


def task_to_item(task: Task) -> dict[str, Any]:
    item = {**keys.task(task.id), **keys.task_list_entry(task.run_id, task.id), "type": "task",
            **task.model_dump(mode="json"),
            **{name: getattr(task, name) for name in INTERNAL_TASK_FIELDS}}
    if task.status == TaskStatus.queued and task.awaiting_start:
        item.update(keys.start_entry(task.run_id, task.priority, task.created_at, task.id))
    elif task.status == TaskStatus.queued and task.enqueued_at:
        item.update(keys.queue_entry(task.project_id, task.stage.value, task.priority, task.enqueued_at, task.id))
        item.update(keys.run_queue_entry(task.run_id, task.stage.value, task.priority, task.enqueued_at, task.id))
        if task.wait_reported_for != task.enqueued_at:
            deadline = clock.plus_seconds(task.enqueued_at, task.queue_timeout_seconds)
            item.update(keys.waiting_entry(deadline, task.id))
    elif task.status == TaskStatus.in_progress and task.lease_expires_at:
        item.update(keys.lease_entry(task.project_id, task.stage.value, task.lease_expires_at, task.id))
    return item


def item_to_task(item: dict[str, Any]) -> Task:
    return Task(**{k: v for k, v in item.items() if k in Task.model_fields})


def item_to_event(item: dict[str, Any]) -> Event:
    return Event(**{k: v for k, v in item.items() if k in Event.model_fields})


def item_to_api_key(item: dict[str, Any]) -> ApiKey:
    return ApiKey(**{k: v for k, v in item.items() if k in ApiKey.model_fields})


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


class Page:
    """One page of a list: the items and the cursor of the next page (None on the last)."""

    def __init__(self, items: list[Any], next_cursor: Optional[str]):
        self.items = items
        self.next_cursor = next_cursor


# --------------------------------------------------------------------------- the store

class BatonStore:
    """All reads and writes of the single table. Takes its client and table name; builds nothing."""

    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table = table_name

    # ---- low-level helpers

    def _get(self, key: dict[str, str]) -> Optional[dict[str, Any]]:
        response = self.client.get_item(TableName=self.table, Key=serialize(key), ConsistentRead=True)
        item = response.get("Item")
        return deserialize(item) if item else None

    def get_item(self, key: dict[str, str]) -> Optional[dict[str, Any]]:
        return self._get(key)

    def _query_page(self, *, index: Optional[str], partition_name: str, partition: str,
                    limit: int, cursor: Optional[str], forward: bool = True,
                    sort_condition: Optional[tuple[str, str, dict[str, Any]]] = None,
                    filters: Optional[dict[str, Any]] = None,
                    names: frozenset[str] = KEY_NAMES) -> tuple[list[dict[str, Any]], Optional[str]]:
        start = decode_cursor(cursor, expected={partition_name: partition}, names=names)
        expression = "#p = :p"
        values: dict[str, Any] = {":p": _av(partition)}
        attr_names = {"#p": partition_name}
        if sort_condition:
            sort_name, operator, value = sort_condition
            attr_names["#s"] = sort_name
            expression += f" AND #s {operator} :s"
            values[":s"] = _av(value)
        kwargs: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": expression,
                                  "ScanIndexForward": forward, "Limit": limit}
        if index:
            kwargs["IndexName"] = index
        else:
            kwargs["ConsistentRead"] = True
        if filters:
            clauses = []
            for i, (name, value) in enumerate(filters.items()):
                attr_names[f"#f{i}"] = name
                values[f":f{i}"] = _av(value)
                clauses.append(f"#f{i} = :f{i}")
            kwargs["FilterExpression"] = " AND ".join(clauses)
        kwargs["ExpressionAttributeNames"] = attr_names
        kwargs["ExpressionAttributeValues"] = values
        if start:
            kwargs["ExclusiveStartKey"] = serialize(start)
        items: list[dict[str, Any]] = []
        # A filter can leave a page short; keep reading until the page is full or the list ends.
        while True:
            response = self.client.query(**kwargs)
            items.extend(deserialize(i) for i in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last or len(items) >= limit or not filters:
                break
            kwargs["ExclusiveStartKey"] = last
            kwargs["Limit"] = limit - len(items)
        if len(items) > limit:
            items = items[:limit]
            last_item = items[-1]
            last = {n: last_item[n] for n in names}
            return items, encode_cursor(last)
        return items, encode_cursor(deserialize(last) if last else None)

    def transact(self, operations: list[dict[str, Any]]) -> None:
        try:
            self.client.transact_write_items(TransactItems=operations, ClientRequestToken=str(uuid.uuid4()))
        except self.client.exceptions.TransactionCanceledException as error:
            reasons = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
            raise TransactionCancelled(reasons or ["Unknown"] * len(operations)) from None

    def put_op(self, item: dict[str, Any], condition: Optional[str] = None,
               values: Optional[dict[str, Any]] = None, names: Optional[dict[str, str]] = None) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.table, "Item": serialize(item)}
        if condition:
            put["ConditionExpression"] = condition
        if values:
            put["ExpressionAttributeValues"] = {k: _av(v) for k, v in values.items()}
        if names:
            put["ExpressionAttributeNames"] = names
        return {"Put": put}

    def task_put_op(self, task: Task, expected_version: Optional[int]) -> dict[str, Any]:
        if expected_version is None:
            return self.put_op(task_to_item(task), "attribute_not_exists(pk)")
        return self.put_op(task_to_item(task), "version = :v", {":v": expected_version})

    # ---- the audited change: operations + run counters + one event, one transaction

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
                run_item = self._get(keys.run(run_id))
                if run_item is None:
                    raise NotFoundError("run not found")
            effect = on_run(run_item) if on_run else None
            if isinstance(effect, dict):
                effect = RunEffect(set=effect)
            effect = effect or RunEffect()
            previous = int(run_item.get("event_seq", 0))
            now = clock.now_iso()
            event = {**keys.event(run_id, previous + 1), "type": "event", "seq": previous + 1, "at": now,
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
                "TableName": self.table, "Key": serialize(keys.run(run_id)), "UpdateExpression": expression,
                "ConditionExpression": "#seq = :prev", "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {k: _av(v) for k, v in values.items()}}}
            effect_ops = list(effect.operations) + [self.outbox_put_op(r) for r in effect.outbox]
            ops = list(operations) + effect_ops + [run_update, self.put_op(event, "attribute_not_exists(pk)")]
            try:
                self.transact(ops)
                return Committed(event=event, effect=effect, run_item=run_item)
            except TransactionCancelled as cancelled:
                for index in range(len(operations) + len(effect_ops)):
                    if cancelled.reasons[index] == "ConditionalCheckFailed":
                        raise ConflictError("the item changed since it was read; read it again and retry",
                                            code="stale_version") from None
                run_item = None  # someone else took the sequence number, or a transient conflict
        raise ConflictError("the run is too busy right now; retry shortly", code="busy")

    # ---- projects

    def create_project(self, project: Project) -> None:
        try:
            self.transact([self.put_op(project_to_item(project), "attribute_not_exists(pk)")])
        except TransactionCancelled:
            raise ConflictError(f"project {project.id!r} already exists; choose another id",
                                code="project_exists") from None

    def get_project(self, project_id: str) -> Optional[Project]:
        item = self._get(keys.project(project_id))
        return item_to_project(item) if item else None

    def replace_project(self, project: Project, expected_version: int) -> None:
        try:
            self.transact([self.put_op(project_to_item(project), "version = :v", {":v": expected_version})])
        except TransactionCancelled:
            raise ConflictError("the project changed since it was read; retry", code="stale_version") from None

    def list_projects(self, limit: int, cursor: Optional[str]) -> Page:
        items, next_cursor = self._query_page(index="gsi1", partition_name="gsi1pk",
                                              partition=keys.PROJECTS_PARTITION, limit=limit, cursor=cursor,
                                              names=GSI1_NAMES)
        return Page([item_to_project(i) for i in items], next_cursor)

    def get_projects(self, project_ids: Iterable[str]) -> list[Project]:
        wanted = sorted(set(project_ids))
        found: list[Project] = []
        for start in range(0, len(wanted), 100):
            request = {self.table: {"Keys": [serialize(keys.project(p)) for p in wanted[start:start + 100]],
                                    "ConsistentRead": True}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                found.extend(item_to_project(deserialize(i)) for i in response["Responses"].get(self.table, []))
                request = response.get("UnprocessedKeys") or None
        return sorted(found, key=lambda p: p.id)

    # ---- runs

    def create_run(self, run: Run, tasks: list[Task], counters: dict[str, int], actor: str) -> None:
        """Write the run (``pending``) with its counters and creation event, its tasks in
        transactions of up to 100, then mark it ``running`` with a second event."""
        event = {**keys.event(run.id, 1), "type": "event", "seq": 1, "at": run.created_at, "actor": actor,
                 "action": "run.created", "entity": f"run:{run.id}",
                 "data": {"title": run.title, "tasks": len(tasks), "stages": [s.value for s in run.stages]}}
        self.transact([self.put_op(run_to_item(run, counters, event_seq=1), "attribute_not_exists(pk)"),
                       self.put_op(event, "attribute_not_exists(pk)")])
        for start in range(0, len(tasks), TRANSACTION_LIMIT):
            self.transact([self.task_put_op(t, None) for t in tasks[start:start + TRANSACTION_LIMIT]])

    def get_run_item(self, run_id: str) -> Optional[dict[str, Any]]:
        return self._get(keys.run(run_id))

    def list_runs(self, project_id: str, limit: int, cursor: Optional[str]) -> Page:
        items, next_cursor = self._query_page(index="gsi1", partition_name="gsi1pk",
                                              partition=keys.runs_of_project(project_id), limit=limit,
                                              cursor=cursor, forward=False, names=GSI1_NAMES)
        return Page([item_to_run(i) for i in items], next_cursor)

    # ---- tasks

    def get_task(self, task_id: str) -> Optional[Task]:
        item = self._get(keys.task(task_id))
        return item_to_task(item) if item else None

    def list_tasks(self, run_id: str, limit: int, cursor: Optional[str],
                   stage: Optional[str] = None, status: Optional[str] = None) -> Page:
        filters = {k: v for k, v in (("stage", stage), ("status", status)) if v}
        items, next_cursor = self._query_page(index="gsi1", partition_name="gsi1pk",
                                              partition=keys.tasks_of_run(run_id), limit=limit, cursor=cursor,
                                              filters=filters or None, names=GSI1_NAMES)
        return Page([item_to_task(i) for i in items], next_cursor)

    def replace_task(self, task: Task, expected_version: int, operations: Sequence[dict[str, Any]] = ()) -> None:
        """A change that needs no audit event (a lease extension), with any outbox records."""
        try:
            self.transact([self.task_put_op(task, expected_version), *operations])
        except TransactionCancelled:
            raise ConflictError("the task changed since it was read; read it again and retry",
                                code="stale_version") from None

    def iter_run_tasks(self, run_id: str) -> Iterable[Task]:
        cursor = None
        while True:
            page = self.list_tasks(run_id, 200, cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def queue_candidates(self, project_id: str, stage: str, limit: int,
                         run_id: Optional[str] = None) -> list[Task]:
        """Queued tasks of a project at a stage, highest priority then oldest first."""
        items, _ = self._query_page(index="gsi2", partition_name="gsi2pk",
                                    partition=keys.queue_partition(project_id, stage), limit=limit, cursor=None,
                                    filters={"run_id": run_id} if run_id else None)
        return [item_to_task(i) for i in items]

    def run_queue_candidates(self, run_id: str, stage: str, limit: int) -> list[Task]:
        """Queued tasks of one run at a stage, highest priority then oldest first (gsi4)."""
        items, _ = self._query_page(index="gsi4", partition_name="gsi4pk",
                                    partition=keys.run_queue_partition(run_id, stage), limit=limit, cursor=None,
                                    names=GSI4_NAMES)
        return [item_to_task(i) for i in items]

    def overdue_waits(self, now: str, limit: int) -> list[Task]:
        """Queued tasks unclaimed past their run's queue timeout and not reported yet (gsi3)."""
        items, _ = self._query_page(index="gsi3", partition_name="gsi3pk", partition=keys.WAITING_PARTITION,
                                    limit=limit, cursor=None, sort_condition=("gsi3sk", "<", now))
        return [item_to_task(i) for i in items]

    def expired_leases(self, project_id: str, stage: str, now: str, limit: int) -> list[Task]:
        """In-progress tasks whose lease ended before ``now``, oldest expiry first."""
        items, _ = self._query_page(index="gsi2", partition_name="gsi2pk",
                                    partition=keys.lease_partition(project_id, stage), limit=limit, cursor=None,
                                    sort_condition=("gsi2sk", "<", now))
        return [item_to_task(i) for i in items]

    # ---- events

    def list_events(self, run_id: str, after: int, limit: int) -> list[Event]:
        response = self.client.query(
            TableName=self.table, ConsistentRead=True, Limit=limit,
            KeyConditionExpression="pk = :p AND sk BETWEEN :from AND :to",
            ExpressionAttributeValues={":p": _av(keys.run(run_id)["pk"]), ":from": _av(keys.event_sk(after + 1)),
                                       ":to": _av(keys.event_sk(10 ** 12 - 1))})
        return [item_to_event(deserialize(i)) for i in response.get("Items", [])]

    # ---- api keys

    def create_api_key(self, key_hash: str, api_key: ApiKey) -> None:
        item = {**keys.api_key(key_hash), **keys.api_key_list_entry(api_key.id), "type": "api_key",
                "key_hash": key_hash, **api_key.model_dump(mode="json")}
        self.transact([self.put_op(item, "attribute_not_exists(pk)")])

    def create_launch_code(self, code_hash: str, *, name: str, project_id: str, task_id: str, job_id: str,
                           stage: str, dispatch: int, claim_id: str, expires_at: str, token_seconds: int) -> None:
        """A single-use launch code of one container job (its hash; the code itself is never stored)."""
        item = {**keys.api_key(code_hash), "type": "launch_code", "key_hash": code_hash, "id": f"lc_{job_id}",
                "name": name, "principal": "agent", "project_ids": [project_id], "task_id": task_id,
                "job_id": job_id, "stage": stage, "dispatch": dispatch, "claim_id": claim_id,
                "token_seconds": token_seconds, "created_at": clock.now_iso(), "expires_at": expires_at,
                "expires_at_epoch": int(clock.parse_iso(expires_at).timestamp()) + 86_400}
        self.transact([self.put_op(item, "attribute_not_exists(pk)")])

    def redeem_launch_code(self, code_hash: str, token_hash: str, api_key: ApiKey, *, launch: dict[str, Any],
                           expires_at: str, now: str) -> None:
        """Spend the launch code and write the job token it buys, atomically: of two redeemers exactly
        one gets a token (the other: 401 ``launch_code_used``)."""
        spend = {"Update": {
            "TableName": self.table, "Key": serialize(keys.api_key(code_hash)),
            "UpdateExpression": "SET used_at = :now",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(used_at) AND expires_at > :now",
            "ExpressionAttributeValues": {":now": _av(now)}}}
        token = {**keys.api_key(token_hash), "type": "job_token", "key_hash": token_hash,
                 **api_key.model_dump(mode="json"),
                 **{k: launch[k] for k in ("task_id", "job_id", "stage", "dispatch", "claim_id")},
                 "expires_at": expires_at, "expires_at_epoch": int(clock.parse_iso(expires_at).timestamp()) + 86_400}
        try:
            self.transact([spend, self.put_op(token, "attribute_not_exists(pk)")])
        except TransactionCancelled:
            raise UnauthenticatedError("the launch code was already used or expired; a launch code buys one "
                                       "token, once", code="launch_code_used") from None

    def get_api_key(self, key_hash: str) -> Optional[dict[str, Any]]:
        return self._get(keys.api_key(key_hash))

    def list_api_keys(self, limit: int, cursor: Optional[str]) -> Page:
        items, next_cursor = self._query_page(index="gsi1", partition_name="gsi1pk",
                                              partition=keys.KEYS_PARTITION, limit=limit, cursor=cursor,
                                              forward=False, names=GSI1_NAMES)
        return Page([item_to_api_key(i) for i in items], next_cursor)

    def find_api_key(self, key_id: str) -> Optional[dict[str, Any]]:
        response = self.client.query(
            TableName=self.table, IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p AND gsi1sk = :s",
            ExpressionAttributeValues={":p": _av(keys.KEYS_PARTITION),
                                       ":s": _av(keys.api_key_list_entry(key_id)["gsi1sk"])})
        items = response.get("Items", [])
        return deserialize(items[0]) if items else None

    def revoke_api_key(self, key_hash: str, revoked_at: str) -> None:
        self.client.update_item(
            TableName=self.table, Key=serialize(keys.api_key(key_hash)),
            UpdateExpression="SET revoked_at = :t", ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":t": _av(revoked_at)})


    # ---- orchestration: tasks waiting to start, stage jobs, outbox, approvals

    def tasks_awaiting_start(self, run_id: str, limit: int) -> list[Task]:
        items, _ = self._query_page(index="gsi2", partition_name="gsi2pk", partition=keys.start_partition(run_id),
                                    limit=limit, cursor=None)
        return [item_to_task(i) for i in items]

    def job_put_op(self, job: dict[str, Any]) -> dict[str, Any]:
        item = {**keys.job(job["task_id"], job["dispatch"]), "type": "job", **job}
        return self.put_op(item, "attribute_not_exists(pk)")

    def get_job(self, task_id: str, dispatch_seq: int) -> Optional[dict[str, Any]]:
        return self._get(keys.job(task_id, dispatch_seq))

    def update_job(self, task_id: str, dispatch_seq: int, fields: dict[str, Any]) -> None:
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":f{i}": _av(v) for i, v in enumerate(fields.values())}
        self.client.update_item(TableName=self.table, Key=serialize(keys.job(task_id, dispatch_seq)),
                                UpdateExpression="SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(fields))),
                                ConditionExpression="attribute_exists(pk)", ExpressionAttributeNames=names,
                                ExpressionAttributeValues=values)

    def list_jobs(self, task_id: str) -> list[dict[str, Any]]:
        response = self.client.query(
            TableName=self.table, ConsistentRead=True,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues={":p": _av(keys.task_partition(task_id)), ":s": _av(keys.JOB_PREFIX)})
        return [deserialize(i) for i in response.get("Items", [])]

    def outbox_put_op(self, record: dict[str, Any]) -> dict[str, Any]:
        item = {**keys.outbox(record["id"]), **keys.outbox_entry(record["created_at"], record["id"]),
                "type": "outbox", **record}
        return self.put_op(item, "attribute_not_exists(pk)")

    def get_outbox(self, record_id: str) -> Optional[dict[str, Any]]:
        return self._get(keys.outbox(record_id))

    def pending_outbox(self, limit: int) -> list[dict[str, Any]]:
        items, _ = self._query_page(index="gsi3", partition_name="gsi3pk", partition=keys.OUTBOX_PARTITION,
                                    limit=limit, cursor=None)
        return items

    def delete_outbox(self, record_id: str) -> None:
        self.client.delete_item(TableName=self.table, Key=serialize(keys.outbox(record_id)))

    def approval_put_op(self, approval: dict[str, Any], condition: Optional[str] = None,
                        values: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        item = {**keys.approval(approval["run_id"], approval["gate"]), "type": "approval", **approval}
        return self.put_op(item, condition or "attribute_not_exists(pk)", values)

    def get_approval(self, run_id: str, gate: str) -> Optional[dict[str, Any]]:
        return self._get(keys.approval(run_id, gate))

    def list_approvals(self, run_id: str) -> list[dict[str, Any]]:
        response = self.client.query(
            TableName=self.table, ConsistentRead=True,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues={":p": _av(keys.run(run_id)["pk"]), ":s": _av(keys.APPROVAL_PREFIX)})
        return [deserialize(i) for i in response.get("Items", [])]

    # ---- role configs: immutable versions plus an ACTIVE copy

    def get_active_role(self, role: str) -> Optional[dict[str, Any]]:
        return self._get(keys.role_active(role))

    def get_role_version(self, role: str, version: int) -> Optional[dict[str, Any]]:
        return self._get(keys.role_version(role, version))

    def get_active_roles(self, roles: Sequence[str]) -> dict[str, dict[str, Any]]:
        request = {self.table: {"Keys": [serialize(keys.role_active(r)) for r in roles], "ConsistentRead": True}}
        found: dict[str, dict[str, Any]] = {}
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for raw in response["Responses"].get(self.table, []):
                item = deserialize(raw)
                found[item["role"]] = item
            request = response.get("UnprocessedKeys") or None
        return found

    def put_role_version(self, config: dict[str, Any], previous_version: Optional[int]) -> None:
        """Write version N and move ACTIVE to it, unless someone else published N first."""
        version_item = {**keys.role_version(config["role"], config["version"]), "type": "role_version", **config}
        active_item = {**keys.role_active(config["role"]), "type": "role_active", **config}
        if previous_version is None:
            active = self.put_op(active_item, "attribute_not_exists(pk)")
        else:
            active = self.put_op(active_item, "version = :v", {":v": previous_version})
        try:
            self.transact([self.put_op(version_item, "attribute_not_exists(pk)"), active])
        except TransactionCancelled:
            raise ConflictError(f"role {config['role']} was changed at the same time; read it and retry",
                                code="stale_version") from None

    def list_role_versions(self, role: str) -> list[dict[str, Any]]:
        response = self.client.query(
            TableName=self.table, ConsistentRead=True, ScanIndexForward=False,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues={":p": _av(keys.role_active(role)["pk"]), ":s": _av(keys.ROLE_VERSION_PREFIX)})
        return [deserialize(i) for i in response.get("Items", [])]


__all__ = ["BatonStore", "Committed", "Page", "RunEffect", "TransactionCancelled", "serialize", "deserialize"]
