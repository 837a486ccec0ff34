"""The reconciler: executions that should be running and are not get restarted where they stand.

Step Functions is the sequencer, DynamoDB the truth. When an execution is lost (the local stack
restarted from a snapshot: moto's executions are gone; on AWS an execution stopped by hand, or
failed on a transient error) the truth says where the work is, and the reconciler starts a new
execution from there:

* an open task that has started (not held, not waiting for a slot) with no running execution: a
  new one named ``{task}-r{dispatch}`` (idempotent: the same name for the same job) that continues
  its current stage job (the dispatcher attaches the new token to the job, a live claim keeps
  working) or, between stages, dispatches the next one;
* an open run (running, or waiting at a gate) with no running execution: a new one, which finds
  the run where it is (waiting for its tasks, at its canary gate, or at its deploy gate).

Each restart is an audited change (``task.execution_restarted``, ``run.execution_restarted``) with
its StartExecution in the outbox. It reads every open run's tasks: the sweeper runs it every ten
minutes, and the local stack once after restoring a snapshot.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Optional

from ..adapters.dynamodb import Repositories, RunEffect
from ..domain import clock
from ..domain.entities import Task
from ..domain.enums import RunStatus, TaskStatus
from ..domain.errors import ConflictError
from ..domain.messages import StartExecution
from .outbox import Outbox

logger = logging.getLogger("baton.reconciler")

ACTOR = "system:reconciler"
OPEN_RUN_STATUSES = (RunStatus.running, RunStatus.awaiting_approval)
RUNS_PER_PROJECT = 200
# A task or run changed this recently may have its execution still being started (StartExecution
# goes out right after the commit that asked for it): only older ones are looked at.
SETTLE_SECONDS = 60


class Reconciler:
    def __init__(self, repos: Repositories, outbox: Outbox):
        self.repos = repos
        self.outbox = outbox

    def reconcile(self, settle_seconds: Optional[float] = None) -> int:
        """Restart what should run and does not; returns how many executions it started. Tasks and
        runs changed in the last ``SETTLE_SECONDS`` are left alone (their execution may be starting);
        ``settle_seconds=0`` looks at everything (after a restore nothing is starting)."""
        if self.outbox.sfn is None:
            return 0
        started = 0
        wait = SETTLE_SECONDS if settle_seconds is None else settle_seconds
        settled = clock.plus_seconds(clock.now_iso(), -wait) if wait else "9999"
        for run_item in self._open_runs():
            if str(run_item.get("updated_at", "")) < settled:
                started += self._run(run_item)
            for task in self.repos.tasks.of_run(run_item["id"]):
                if not task.is_terminal and task.started and not task.held and task.updated_at < settled:
                    started += self._task(task)
        if started:
            logger.info("reconciled", extra={"executions_started": started})
        return started

    def _open_runs(self) -> Iterator[dict[str, Any]]:
        for project in self.repos.projects.all():
            seen, cursor = 0, None
            while seen < RUNS_PER_PROJECT:
                page = self.repos.runs.list(project.id, 100, cursor)
                for run in page.items:
                    if run.status in OPEN_RUN_STATUSES:
                        item = self.repos.runs.get_item(run.id)
                        if item:
                            yield item
                seen += len(page.items)
                cursor = page.next_cursor
                if not cursor:
                    break

    def _running(self, arn: str) -> bool:
        described = self.outbox.sfn.describe(arn)
        return bool(described) and described.get("status") == "RUNNING"

    def _task(self, task: Task) -> int:
        sfn = self.outbox.sfn
        if self._running(sfn.task_execution_arn(task.execution or task.id)):
            return 0
        waiting_job = bool(task.sfn_token or task.enqueued_at or task.status == TaskStatus.in_progress)
        dispatch = task.dispatch_seq if waiting_job and task.dispatch_seq else task.dispatch_seq + 1
        name = f"{task.id}-r{dispatch}"
        if name == task.execution:
            return 0   # restarted for this job already (its execution may still be starting)
        after = task.model_copy(update={"execution": name, "sfn_token": None,  # nosec B105  # clears a token
                                        "version": task.version + 1, "updated_at": clock.now_iso()})
        record = StartExecution(machine="task", name=name,
                                input={"task_id": task.id, "dispatch": dispatch, "attempt": max(task.attempt, 1)})
        try:
            self.repos.audit.commit(run_id=task.run_id, actor=ACTOR, action="task.execution_restarted",
                                    entity=f"task:{task.id}",
                                    data={"execution": name, "dispatch": dispatch, "stage": task.stage.value,
                                          "previous_execution": task.execution or task.id},
                                    operations=[self.repos.tasks.replace_op(after, task.version),
                                                *self.outbox.operations([record])])
        except ConflictError:
            return 0   # it moved meanwhile: the next pass looks again
        self.outbox.deliver([record])
        return 1

    def _run(self, run_item: dict[str, Any]) -> int:
        sfn = self.outbox.sfn
        run_id = run_item["id"]
        current = run_item.get("execution") or run_id
        if self._running(sfn.run_execution_arn(current)):
            return 0
        name = f"{run_id}-r{int(run_item.get('event_seq', 0))}"
        record = StartExecution(machine="run", name=name, input={"run_id": run_id})

        def restart(item: dict[str, Any]) -> RunEffect:
            if RunStatus(item["status"]) not in OPEN_RUN_STATUSES or (item.get("execution") or run_id) != current:
                raise ConflictError("the run moved on", code="stale_version")
            effect = RunEffect(set={"execution": name}, outbox=[record], event_data={"execution": name})
            if item.get("wait_token"):
                effect.remove.append("wait_token")
            return effect

        try:
            committed = self.repos.audit.commit(run_id=run_id, actor=ACTOR, action="run.execution_restarted",
                                                entity=f"run:{run_id}", data={"previous_execution": current},
                                                run_item=run_item, on_run=restart)
        except ConflictError:
            return 0
        self.outbox.deliver(committed.effect.outbox)
        return 1


__all__ = ["Reconciler"]
