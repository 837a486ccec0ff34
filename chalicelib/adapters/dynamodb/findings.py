"""What findings leave in a run and a task: finding records ``RUN#{run}``/``FINDING#{dedup_key}``
(a finding reported twice creates no second fix task; the record names its fix task), the run's
fix-task counter ``RUN#{run}``/``FIXCOUNT`` (against ``max_fix_tasks``), and a failing verdict
``TASK#{task}``/``VERDICT#{stage}#{iteration}`` (that stage cannot pass in that iteration)."""

from __future__ import annotations

from typing import Any, Iterable, Optional

from . import keyspace
from .table import Table


class FindingRepository:
    def __init__(self, table: Table):
        self.table = table

    def record_op(self, run_id: str, record: dict[str, Any]) -> dict[str, Any]:
        item = {**keyspace.finding(run_id, record["dedup_key"]), "type": "finding", **record}
        return self.table.put_op(item, "attribute_not_exists(pk)")

    def records(self, run_id: str, dedup_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        items = self.table.batch_get([keyspace.finding(run_id, k) for k in dict.fromkeys(dedup_keys)])
        return {i["dedup_key"]: i for i in items}

    def fix_count_op(self, run_id: str, ceiling: Optional[int]) -> dict[str, Any]:
        """Count one more fix task; with a ceiling, only while the count is below it."""
        values: dict[str, Any] = {":one": 1, ":type": "fix_count"}
        condition = None
        if ceiling is not None:
            condition = "attribute_not_exists(#n) OR #n < :max"
            values[":max"] = ceiling
        return self.table.update_op(keyspace.fix_task_count(run_id), "SET #t = :type ADD #n :one", condition=condition,
                                    names={"#n": "n", "#t": "type"}, values=values)

    def fix_count(self, run_id: str) -> int:
        item = self.table.get(keyspace.fix_task_count(run_id))
        return int(item.get("n", 0)) if item else 0

    def failed_verdict_op(self, task_id: str, stage: str, iteration: int, *, verdict: str, reported_by: str,
                          at: str) -> dict[str, Any]:
        item = {**keyspace.failed_verdict(task_id, stage, iteration), "type": "verdict", "verdict": verdict,
                "reported_by": reported_by, "at": at}
        return self.table.put_op(item)

    def has_failed_verdict(self, task_id: str, stage: str, iteration: int) -> bool:
        return self.table.get(keyspace.failed_verdict(task_id, stage, iteration)) is not None


__all__ = ["FindingRepository"]
