"""Tasks: ``TASK#{task}``/``META`` (listed per run on gsi1), in the claim queues while they wait.

A task item carries sparse index keys for what it is waiting for (see docs/data-model.md): gsi2
``START#{run}`` (a parallelism slot), ``QUEUE#{project}#{stage}`` and gsi4 ``RUNQUEUE#{run}#{stage}``
(an agent's claim), ``LEASE#{project}#{stage}`` (its lease to run out); gsi3 ``WAITING`` (its wait
to be reported). Its partition also holds ``COUNTS``, the per-task caps of handoffs and proofs.
Every write is conditioned on the version read (optimistic locking).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Optional, Sequence

from ...domain import clock
from ...domain.errors import ConflictError, RuleViolationError
from ...domain.entities import Task
from ...domain.enums import Hold, TaskStatus
from . import keyspace
from .table import GSI1_NAMES, GSI4_NAMES, Page, Table, TransactionCancelledError

MAX_HANDOFFS_PER_TASK = 200    # per-task caps: a task's history stays a bounded amount of work
MAX_PROOFS_PER_TASK = 500
INTERNAL_TASK_FIELDS = tuple(name for name, field in Task.model_fields.items() if field.exclude)


def task_to_item(task: Task) -> dict[str, Any]:
    item = {**keyspace.task(task.id), **keyspace.task_list_entry(task.run_id, task.id), "type": "task",
            **task.model_dump(mode="json"),
            **{name: getattr(task, name) for name in INTERNAL_TASK_FIELDS}}
    item["supervision"] = task.supervision or None
    if task.status == TaskStatus.queued and task.held == Hold.canary:
        item.update(keyspace.held_entry(task.run_id, task.priority, task.created_at, task.id))
    elif task.status == TaskStatus.queued and task.held == Hold.director:
        pass   # paused: in no queue until a person resumes it
    elif task.status == TaskStatus.queued and task.awaiting_start:
        item.update(keyspace.start_entry(task.run_id, task.priority, task.created_at, task.id))
    elif task.status == TaskStatus.queued and task.enqueued_at:
        item.update(keyspace.queue_entry(task.project_id, task.stage.value, task.priority, task.enqueued_at, task.id))
        item.update(keyspace.run_queue_entry(task.run_id, task.stage.value, task.priority, task.enqueued_at, task.id))
        if task.wait_reported_for != task.enqueued_at:
            deadline = clock.plus_seconds(task.enqueued_at, task.queue_timeout_seconds)
            item.update(keyspace.waiting_entry(deadline, task.id))
    elif task.status == TaskStatus.in_progress and task.lease_expires_at:
        item.update(keyspace.lease_entry(task.project_id, task.stage.value, task.lease_expires_at, task.id))
    return item


def item_to_task(item: dict[str, Any]) -> Task:
    return Task(**{k: v for k, v in item.items() if k in Task.model_fields})


class TaskRepository:
    def __init__(self, table: Table):
        self.table = table

    # ---- reads

    def get(self, task_id: str) -> Optional[Task]:
        item = self.table.get(keyspace.task(task_id))
        return item_to_task(item) if item else None

    def list(self, run_id: str, limit: int, cursor: Optional[str],
             stage: Optional[str] = None, status: Optional[str] = None) -> Page:
        filters = {k: v for k, v in (("stage", stage), ("status", status)) if v}
        items, next_cursor = self.table.query_page(index="gsi1", partition_name="gsi1pk",
                                                   partition=keyspace.tasks_of_run(run_id), limit=limit,
                                                   cursor=cursor, filters=filters or None, names=GSI1_NAMES)
        return Page([item_to_task(i) for i in items], next_cursor)

    def of_run(self, run_id: str) -> Iterable[Task]:
        return self.table.pages(lambda limit, cursor: self.list(run_id, limit, cursor))

    def with_latest_jobs(self, task_id: str, jobs: int) -> tuple[Optional[Task], list[dict[str, Any]]]:
        """The task and its latest ``jobs`` stage jobs, newest first: one Query (``JOB#…`` sorts
        just below ``META`` in the task's partition)."""
        items = self.table.query(partition=keyspace.task_partition(task_id), limit=jobs + 1, forward=False,
                                 sort_between=(keyspace.JOB_SK_PREFIX, keyspace.META))
        meta = next((i for i in items if i["sk"] == keyspace.META), None)
        return (item_to_task(meta) if meta else None), [i for i in items if i["sk"].startswith(keyspace.JOB_SK_PREFIX)][:jobs]

    # ---- the queues

    def queued(self, project_id: str, stage: str, limit: int) -> list[Task]:
        """Queued tasks of a project at a stage, highest priority then oldest first (gsi2)."""
        items, _ = self.table.query_page(index="gsi2", partition_name="gsi2pk",
                                         partition=keyspace.queue_partition(project_id, stage), limit=limit,
                                         cursor=None)
        return [item_to_task(i) for i in items]

    def queued_in_run(self, run_id: str, stage: str, limit: int) -> list[Task]:
        """Queued tasks of one run at a stage, highest priority then oldest first (gsi4)."""
        items, _ = self.table.query_page(index="gsi4", partition_name="gsi4pk",
                                         partition=keyspace.run_queue_partition(run_id, stage), limit=limit,
                                         cursor=None, names=GSI4_NAMES)
        return [item_to_task(i) for i in items]

    def expired_leases(self, project_id: str, stage: str, now: str, limit: int) -> list[Task]:
        """In-progress tasks whose lease ended before ``now``, oldest expiry first (gsi2)."""
        items, _ = self.table.query_page(index="gsi2", partition_name="gsi2pk",
                                         partition=keyspace.lease_partition(project_id, stage), limit=limit,
                                         cursor=None, sort_condition=("gsi2sk", "<", now))
        return [item_to_task(i) for i in items]

    def leased(self, project_id: str, stage: str, limit: int) -> list[Task]:
        """In-progress tasks of a project at a stage, live leases or not, by lease expiry (gsi2)."""
        items, _ = self.table.query_page(index="gsi2", partition_name="gsi2pk",
                                         partition=keyspace.lease_partition(project_id, stage), limit=limit,
                                         cursor=None)
        return [item_to_task(i) for i in items]

    def held(self, run_id: str, limit: int) -> list[Task]:
        """Tasks held back until the run's canary gate, in start order (gsi2)."""
        items, _ = self.table.query_page(index="gsi2", partition_name="gsi2pk", partition=keyspace.held_partition(run_id),
                                         limit=limit, cursor=None)
        return [item_to_task(i) for i in items]

    def awaiting_start(self, run_id: str, limit: int) -> list[Task]:
        """Tasks written but not started (a parallelism slot), in start order (gsi2)."""
        items, _ = self.table.query_page(index="gsi2", partition_name="gsi2pk",
                                         partition=keyspace.start_partition(run_id), limit=limit, cursor=None)
        return [item_to_task(i) for i in items]

    def overdue_waits(self, now: str, limit: int) -> list[Task]:
        """Queued tasks unclaimed past their run's queue timeout and not reported yet (gsi3)."""
        items, _ = self.table.query_page(index="gsi3", partition_name="gsi3pk", partition=keyspace.WAITING_PARTITION,
                                         limit=limit, cursor=None, sort_condition=("gsi3sk", "<", now))
        return [item_to_task(i) for i in items]

    # ---- writes

    def create_op(self, task: Task) -> dict[str, Any]:
        return self.table.put_op(task_to_item(task), "attribute_not_exists(pk)")

    def replace_op(self, task: Task, expected_version: int) -> dict[str, Any]:
        """Write ``task`` if the stored one still has ``expected_version`` (the one read)."""
        return self.table.put_op(task_to_item(task), "version = :v", {":v": expected_version})

    def replace(self, task: Task, expected_version: int, operations: Sequence[dict[str, Any]] = ()) -> None:
        """A change that needs no audit event (a lease extension), with any operations of its own."""
        stale = ConflictError("the task changed since it was read; read it again and retry", code="stale_version")
        if not operations:
            if not self.table.write(self.replace_op(task, expected_version)):
                raise stale
            return
        try:
            self.table.transact([self.replace_op(task, expected_version), *operations])
        except TransactionCancelledError:
            raise stale from None

    def extend_lease(self, task_id: str, *, claim_id: str, now: str, expires_at: str,
                     project_ids: Optional[Sequence[str]] = None) -> bool:
        """A heartbeat in one conditional write, no read: the lease moves to ``expires_at`` only if
        ``claim_id`` holds a live lease (and the task is in one of ``project_ids``, when given).
        False when it does not (the caller reads the task to say why)."""
        condition = "claim_id = :claim AND #st = :in_progress AND lease_expires_at > :now"
        values: dict[str, Any] = {":claim": claim_id, ":in_progress": TaskStatus.in_progress.value, ":now": now,
                                  ":expires": expires_at, ":sk": keyspace.lease_sort_key(expires_at, task_id),
                                  ":one": 1}
        if project_ids is not None:
            if not project_ids:
                return False
            names = [f":p{i}" for i in range(len(project_ids))]
            condition += f" AND project_id IN ({', '.join(names)})"
            values.update(dict(zip(names, project_ids)))
        return self.table.write(self.table.update_op(
            keyspace.task(task_id), "SET lease_expires_at = :expires, gsi2sk = :sk, updated_at = :now ADD version :one",
            condition=condition, names={"#st": "status"}, values=values))

    def failing_findings_op(self, task_id: str, *, stage: str, iteration: int, keys: list[str],
                            now: str) -> dict[str, Any]:
        """Record the failing findings reported at a stage and iteration (for the director's failure
        fingerprint), as a change of the task's version."""
        return self.table.update_op(
            keyspace.task(task_id), "SET failing_findings = :f, updated_at = :now ADD version :one",
            condition="attribute_exists(pk)",
            values={":f": {"stage": stage, "iteration": iteration, "keys": keys}, ":now": now, ":one": 1})

    # ---- per-task caps of handoffs and proofs

    def count_op(self, task_id: str, counter: str, cap: int) -> dict[str, Any]:
        """Count one more handoff or proof of the task, only while below the per-task cap."""
        return self.table.update_op(keyspace.task_counts(task_id), "ADD #n :one",
                                    condition="attribute_not_exists(#n) OR #n < :cap",
                                    names={"#n": counter}, values={":one": 1, ":cap": cap})

    def count(self, task_id: str, counter: str) -> int:
        return int((self.table.get(keyspace.task_counts(task_id)) or {}).get(counter, 0) or 0)

    @contextmanager
    def within_cap(self, task_id: str, counter: str, cap: int, what: str) -> Iterator[None]:
        """Turn a write refused by a per-task cap (``count_op``) into a 422 that says so."""
        try:
            yield
        except ConflictError:
            if self.count(task_id, counter) >= cap:
                raise RuleViolationError(f"task {task_id} already has {cap} {what}, the most a task keeps; "
                                         "summarise in fewer, or start a new task", code="task_cap_reached") from None
            raise


__all__ = ["MAX_HANDOFFS_PER_TASK", "MAX_PROOFS_PER_TASK", "TaskRepository", "item_to_task", "task_to_item"]
