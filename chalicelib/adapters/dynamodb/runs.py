"""Runs: ``RUN#{run}``/``META``, listed per project on gsi1 newest first. The run item carries the
progress counters and ``event_seq``, changed only through ``AuditLog.commit``; its audit events
(``EVENT#…``), gates (``APPROVAL#…``), finding records and fix-task counter share its partition."""

from __future__ import annotations

from typing import Any, Optional

from ...domain.entities import Run, Task
from ...domain.progress import progress_from_counters
from . import keyspace
from .audit import AuditLog
from .table import GSI1_NAMES, TRANSACTION_LIMIT, Page, Table
from .tasks import TaskRepository


def run_to_item(run: Run, counters: Optional[dict[str, int]] = None, event_seq: int = 0) -> dict[str, Any]:
    body = {**run.model_dump(mode="json", exclude={"progress"}), "pinned_role_versions": run.pinned_role_versions}
    return {**keyspace.run(run.id), **keyspace.run_list_entry(run.project_id, run.id), "type": "run",
            **body, **(counters or {}), "event_seq": event_seq}


def item_to_run(item: dict[str, Any]) -> Run:
    run = Run(**{k: v for k, v in item.items() if k in Run.model_fields and k != "progress"})
    return run.model_copy(update={"progress": progress_from_counters(item)})


class RunRepository:
    def __init__(self, table: Table, tasks: TaskRepository, audit: AuditLog):
        self.table = table
        self.tasks = tasks
        self.audit = audit

    def create(self, run: Run, tasks: list[Task], counters: dict[str, int], actor: str) -> None:
        """Write the run (``pending``) with its counters and creation event, then its tasks in
        transactions of up to 100 (the run starts once they are all written)."""
        event = {**keyspace.event(run.id, 1), "type": "event", "seq": 1, "at": run.created_at, "actor": actor,
                 "action": "run.created", "entity": f"run:{run.id}",
                 "data": {"title": run.title, "tasks": len(tasks), "stages": [s.value for s in run.stages]}}
        publication = self.audit.publication(run.project_id, run.id, event)
        self.table.transact([self.table.put_op(run_to_item(run, counters, event_seq=1), "attribute_not_exists(pk)"),
                             self.table.put_op(event, "attribute_not_exists(pk)"),
                             *([self.audit.outbox.put_op(publication)] if publication else [])])
        self.audit.announce(publication)
        for start in range(0, len(tasks), TRANSACTION_LIMIT):
            self.table.transact([self.tasks.create_op(t) for t in tasks[start:start + TRANSACTION_LIMIT]])

    def get_item(self, run_id: str) -> Optional[dict[str, Any]]:
        """The run item as stored: the run's fields, its counters and ``event_seq``."""
        return self.table.get(keyspace.run(run_id))

    def list(self, project_id: str, limit: int, cursor: Optional[str]) -> Page:
        items, next_cursor = self.table.query_page(index="gsi1", partition_name="gsi1pk",
                                                   partition=keyspace.runs_of_project(project_id), limit=limit,
                                                   cursor=cursor, forward=False, names=GSI1_NAMES)
        return Page([item_to_run(i) for i in items], next_cursor)


__all__ = ["RunRepository", "item_to_run", "run_to_item"]
