"""Stage jobs: ``TASK#{task}``/``JOB#{dispatch:06d}``, one per dispatch of a task's stage (its
Step Functions token, executor, attempt, and what became of its launch)."""

from __future__ import annotations

from typing import Any, Optional

from . import keyspace
from .table import Table


class JobRepository:
    def __init__(self, table: Table):
        self.table = table

    def create_op(self, job: dict[str, Any]) -> dict[str, Any]:
        item = {**keyspace.job(job["task_id"], job["dispatch"]), "type": "job", **job}
        return self.table.put_op(item, "attribute_not_exists(pk)")

    def get(self, task_id: str, dispatch: int) -> Optional[dict[str, Any]]:
        return self.table.get(keyspace.job(task_id, dispatch))

    def mark_launched(self, task_id: str, dispatch: int, *, launched_at: str, launch_id: str) -> None:
        self.table.write(self.table.update_op(
            keyspace.job(task_id, dispatch), "SET #s = :s, launched_at = :at, launch_id = :id",
            condition="attribute_exists(pk)", names={"#s": "status"},
            values={":s": "launched", ":at": launched_at, ":id": launch_id}))


__all__ = ["JobRepository"]
