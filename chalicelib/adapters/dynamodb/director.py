"""The director's own records (what it knows about tasks lives on the task, ``supervision``):

* a run's watch, ``RUN#{run}``/``DIRECTOR``: how far the director read the run's audit log, the
  stage jobs in flight, the durations of the finished ones, the budget it escalated for (versioned);
* a claim queue's watch, ``PROJECT#{project}``/``QUEUE#{stage}``: the last claim attempt that found
  nothing (recorded by claims, throttled per process) and the last idle report;
* a project's escalation count per clock hour, ``PROJECT#{project}``/``ESCALATIONS#{hour}`` (the
  per-project rate limit, counted in each escalation's transaction; expires after a day).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ...domain import clock
from . import keyspace
from .table import Table, TransactionCancelledError

if TYPE_CHECKING:   # the models load with the director's first use, not with every container
    from ...domain.director.watches import QueueWatch, RunWatch

WINDOW_KEPT_SECONDS = 86_400


class DirectorRepository:
    def __init__(self, table: Table):
        self.table = table

    # ---- runs

    def runs_with_watches(self, run_ids: list[str]) -> dict[str, tuple[dict[str, Any], "RunWatch"]]:
        """The run items and the director's watches of ``run_ids`` (one BatchGetItem per 50 runs);
        runs that no longer exist are left out."""
        from ...domain.director.watches import RunWatch

        keys = [k for run_id in run_ids for k in (keyspace.run(run_id), keyspace.run_watch(run_id))]
        found = {(i["pk"], i["sk"]): i for i in self.table.batch_get(keys)} if keys else {}
        result: dict[str, tuple[dict[str, Any], "RunWatch"]] = {}
        for run_id in run_ids:
            run_item = found.get(tuple(keyspace.run(run_id).values()))
            if run_item is None:
                continue
            watch = found.get(tuple(keyspace.run_watch(run_id).values()))
            result[run_id] = (run_item, RunWatch(**{k: v for k, v in (watch or {}).items()
                                                    if k in RunWatch.model_fields}))
        return result

    def watch_op(self, run_id: str, watch: "RunWatch") -> dict[str, Any]:
        """Write ``watch`` as version ``watch.version + 1``, if nobody wrote it since ``watch.version``."""
        item = {**keyspace.run_watch(run_id), "type": "director_run", "run_id": run_id,
                **watch.model_dump(mode="json"), "version": watch.version + 1}
        if watch.version == 0:
            return self.table.put_op(item, "attribute_not_exists(pk)")
        return self.table.put_op(item, "version = :v", {":v": watch.version})

    def save_watch(self, run_id: str, watch: "RunWatch") -> bool:
        return self.table.write(self.watch_op(run_id, watch))

    # ---- claim queues

    def queue(self, project_id: str, stage: str) -> "QueueWatch":
        from ...domain.director.watches import QueueWatch

        item = self.table.get(keyspace.queue_watch(project_id, stage)) or {}
        return QueueWatch(**{k: v for k, v in item.items() if k in QueueWatch.model_fields})

    def record_attempt(self, project_id: str, stage: str, at: str) -> bool:
        """A claim attempt on the queue at ``at``, kept when the project exists and ``at`` is later than
        the attempt recorded (one transaction: a claim naming an unknown project writes nothing)."""
        try:
            self.table.transact([
                self.table.check_op(keyspace.project(project_id), "attribute_exists(pk)"),
                self.table.update_op(keyspace.queue_watch(project_id, stage), "SET last_attempt_at = :at, #t = :type",
                                     condition="attribute_not_exists(last_attempt_at) OR last_attempt_at < :at",
                                     names={"#t": "type"}, values={":at": at, ":type": "director_queue"})])
        except TransactionCancelledError:
            return False
        return True

    def idle_reported_op(self, project_id: str, stage: str, at: str, previous: Optional[str]) -> dict[str, Any]:
        """The queue reported idle at ``at``, unless someone reported it since ``previous`` (the report read)."""
        condition = "attribute_not_exists(idle_reported_at)" if previous is None else "idle_reported_at = :prev"
        values: dict[str, Any] = {":at": at, ":type": "director_queue"}
        if previous is not None:
            values[":prev"] = previous
        return self.table.update_op(keyspace.queue_watch(project_id, stage), "SET idle_reported_at = :at, #t = :type",
                                    condition=condition, names={"#t": "type"}, values=values)

    # ---- the per-project escalation limit

    def escalations(self, project_id: str, window: str) -> int:
        item = self.table.get(keyspace.escalation_window(project_id, window)) or {}
        return int(item.get("n", 0) or 0)

    def count_escalation_op(self, project_id: str, window: str, limit: int) -> dict[str, Any]:
        """One more escalation in the project's ``window``; with a limit, only while below it."""
        expires = int(clock.parse_iso(clock.now_iso()).timestamp()) + WINDOW_KEPT_SECONDS
        values: dict[str, Any] = {":one": 1, ":type": "director_escalations", ":exp": expires}
        condition = None
        if limit:
            condition = "attribute_not_exists(#n) OR #n < :max"
            values[":max"] = limit
        return self.table.update_op(keyspace.escalation_window(project_id, window),
                                    "SET #t = :type, expires_at_epoch = :exp ADD #n :one", condition=condition,
                                    names={"#n": "n", "#t": "type"}, values=values)


__all__ = ["DirectorRepository"]
