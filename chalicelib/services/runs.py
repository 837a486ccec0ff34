"""Runs: start a batch of tasks, watch its progress, read its audit log, kill it."""

from __future__ import annotations

from typing import Any, Callable, Optional

from ..adapters.dynamo import BatonStore, Page, RunEffect, item_to_run
from ..domain import clock, pipeline
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import ConflictError, InvalidInputError, NotFoundError, RuleViolationError
from ..domain.ids import is_valid_id, new_id
from ..domain.models import (Event, Progress, Run, RunCreate, RunStatus, Stage, Task, TaskCreate, TaskSource,
                             TaskStatus, TERMINAL_RUN_STATUSES)
from ..domain.progress import TOTAL_COUNTER, counter_deltas, new_task_deltas, progress_from_counters
from . import lifecycle, outbox
from .outbox import Outbox
from .projects import ProjectService
from .roles import RoleService

CANCEL_CHUNK = 25


def new_task(run: Run, *, title: str, description: str, priority: int, source: TaskSource,
             parent_task_id: Optional[str], now: str, sfn: bool) -> Task:
    """A task at its first stage: claimable at once in plain mode; in Step Functions mode it
    waits for a parallelism slot, then for its stage job to be dispatched."""
    stage = Stage.cicd if source == TaskSource.release else pipeline.first_stage(run.stages)
    return Task(id=new_id("task"), run_id=run.id, project_id=run.project_id, title=title,
                description=description, priority=priority, stage=stage,
                status=TaskStatus.queued, iteration=1, source=source, parent_task_id=parent_task_id,
                created_at=now, updated_at=now, enqueued_at=None if sfn else now, awaiting_start=sfn,
                queue_timeout_seconds=run.queue_timeout_seconds)


def require_task_room(run_item: dict[str, Any], adding: int = 1) -> None:
    """The run's ``max_tasks`` ceiling, checked on the run as read by the transaction that adds
    the task (its write is conditioned on that read), so no path can exceed it."""
    ceiling = (run_item.get("ceilings") or {}).get("max_tasks")
    total = int(run_item.get(TOTAL_COUNTER, 0) or 0)
    if ceiling is not None and total + adding > int(ceiling):
        raise RuleViolationError(f"run {run_item.get('id')} has {total} tasks and its ceiling is max_tasks={ceiling}; "
                                 "raise the ceiling in a new run, or finish this one", code="ceiling_exceeded")


def require_open_run(run_item: dict[str, Any]) -> None:
    status = RunStatus(run_item["status"])
    if status in TERMINAL_RUN_STATUSES:
        raise ConflictError(f"run {run_item['id']} is {status.value}; it takes no more work", code="run_ended")


class RunService:
    def __init__(self, store: BatonStore, projects: ProjectService, roles: RoleService, outbox_: Outbox, *,
                 sfn: bool, director: Any = None):
        self.director = director
        self.store = store
        self.projects = projects
        self.roles = roles
        self.outbox = outbox_
        self.sfn = sfn

    # ---- reads

    def run_item(self, principal: Principal, run_id: str, action: Action = Action.read) -> dict[str, Any]:
        item = self.store.get_run_item(run_id) if is_valid_id(run_id, "run") else None
        if item is None:
            raise NotFoundError("run not found")
        authorize(principal, action, project_id=item["project_id"], what="run")
        return item

    def get(self, principal: Principal, run_id: str) -> Run:
        return item_to_run(self.run_item(principal, run_id))

    def progress(self, principal: Principal, run_id: str) -> Progress:
        """One GetItem: progress is kept as counters on the run item."""
        return progress_from_counters(self.run_item(principal, run_id))

    def list(self, principal: Principal, project_id: str, limit: int, cursor: Optional[str]) -> Page:
        self.projects.get(principal, project_id)
        return self.store.list_runs(project_id, limit, cursor)

    def list_tasks(self, principal: Principal, run_id: str, limit: int, cursor: Optional[str],
                   stage: Optional[str], status: Optional[str]) -> Page:
        self.run_item(principal, run_id)
        return self.store.list_tasks(run_id, limit, cursor, stage=stage, status=status)

    def events(self, principal: Principal, run_id: str, after: int, limit: int) -> list[Event]:
        self.run_item(principal, run_id)
        return self.store.list_events(run_id, after, limit)

    # ---- writes

    def start(self, principal: Principal, project_id: str, request: RunCreate) -> Run:
        self.projects.get(principal, project_id, Action.manage_project)
        ceilings = request.ceilings
        if ceilings.max_tasks is not None and len(request.tasks) > ceilings.max_tasks:
            raise RuleViolationError(f"{len(request.tasks)} tasks exceed the run's ceiling max_tasks="
                                     f"{ceilings.max_tasks}", code="ceiling_exceeded")
        now = clock.now_iso()
        if "max_iterations" not in request.model_fields_set and self.director is not None:
            request = request.model_copy(update={"max_iterations": self.director.current().max_iterations_default})
        pinned = self.roles.active_all()
        run = Run(id=new_id("run"), project_id=project_id, title=request.title, status=RunStatus.pending,
                  stages=request.stages, max_iterations=request.max_iterations, parallelism=request.parallelism,
                  canary=request.canary, ceilings=ceilings, deploy_gate=request.deploy_gate,
                  finding_threshold=request.finding_threshold, queue_timeout_seconds=request.queue_timeout_seconds,
                  pinned_roles={r.value: c.digest for r, c in pinned.items()},
                  pinned_role_versions={r.value: c.version for r, c in pinned.items()},
                  created_at=now, created_by=principal.actor, updated_at=now)
        tasks = [new_task(run, title=t.title, description=t.description, priority=t.priority,
                          source=TaskSource.manual, parent_task_id=None, now=now, sfn=self.sfn)
                 for t in request.tasks]
        counters = new_task_deltas(pipeline.first_stage(run.stages), TaskStatus.queued, len(tasks)) if tasks else {}
        self.store.create_run(run, tasks, counters, principal.actor)
        # Every task is written: the run starts (its execution, and the first tasks up to parallelism).
        records = []
        if self.sfn:
            records = [outbox.record("start", machine="run", name=run.id, input={"run_id": run.id}),
                       lifecycle.fill_request(run.id)]
        self.store.commit(run_id=run.id, actor=principal.actor, action="run.started", entity=f"run:{run.id}",
                          data={"tasks": len(tasks), "pinned_roles": run.pinned_roles},
                          operations=self.outbox.operations(records),
                          on_run=lambda item: {"status": RunStatus.running.value})
        self.outbox.deliver(records)
        return item_to_run(self.store.get_run_item(run.id) or {})

    def add_task(self, principal: Principal, run_id: str, request: TaskCreate, *,
                 source: TaskSource = TaskSource.manual, parent_task_id: Optional[str] = None,
                 action: Action = Action.manage_project) -> Task:
        item = self.run_item(principal, run_id, action)
        require_open_run(item)
        if item.get("release_task_id"):
            raise ConflictError(f"run {run_id} passed its deploy gate; start a new run for more work",
                                code="run_released")
        task, committed = self.create_task(item, title=request.title, description=request.description,
                                           priority=request.priority, source=source, parent_task_id=parent_task_id,
                                           actor=principal.actor)
        return task

    def create_task(self, item: dict[str, Any], *, title: str, description: str, priority: int,
                    source: TaskSource, parent_task_id: Optional[str], actor: str,
                    operations: tuple[dict[str, Any], ...] = (),
                    operations_for: Optional[Callable[[Task], Any]] = None,
                    run_set_fn: Optional[Callable[[dict[str, Any], str], dict[str, Any]]] = None,
                    check_run: Optional[Callable[[dict[str, Any]], None]] = None,
                    event_data: Optional[dict[str, Any]] = None) -> tuple[Task, Any]:
        """Write one task into its run (counters, event, and a fill request), in one transaction.
        ``operations_for(task)`` adds writes that name the new task (e.g. a finding's record)."""
        run = item_to_run(item)
        task = new_task(run, title=title, description=description, priority=priority, source=source,
                        parent_task_id=parent_task_id, now=clock.now_iso(), sfn=self.sfn)
        deltas = new_task_deltas(task.stage, task.status)
        records = [lifecycle.fill_request(run.id)] if self.sfn else []

        def reopen(current: dict[str, Any]) -> dict[str, Any]:
            if check_run:
                check_run(current)
            else:
                require_open_run(current)
            require_task_room(current)
            return {"status": RunStatus.running.value, **(run_set_fn(current, task.id) if run_set_fn else {})}

        committed = self.store.commit(
            run_id=run.id, actor=actor, action="task.created", entity=f"task:{task.id}",
            data={"title": task.title, "source": source.value, "parent_task_id": parent_task_id,
                  "priority": task.priority, "stage": task.stage.value, **(event_data or {})},
            operations=[self.store.task_put_op(task, None), *operations,
                        *(operations_for(task) if operations_for else ()), *self.outbox.operations(records)],
            counters=deltas, run_item=item, on_run=reopen)
        self.outbox.deliver(records)
        return task, committed

    def kill(self, principal: Principal, run_id: str) -> Run:
        """Soft kill: the run becomes ``killed`` and its open tasks ``cancelled``; nothing is deleted."""
        item = self.run_item(principal, run_id, Action.manage_project)
        status = RunStatus(item["status"])
        if status in (RunStatus.succeeded, RunStatus.failed):
            raise ConflictError(f"run {run_id} already ended {status.value}; there is nothing to kill",
                                code="run_ended")
        if status != RunStatus.killed:
            def mark_killed(current: dict[str, Any]) -> RunEffect:
                if RunStatus(current["status"]) in (RunStatus.succeeded, RunStatus.failed):
                    raise ConflictError(f"run {run_id} ended while it was being killed", code="run_ended")
                effect = RunEffect(set={"status": RunStatus.killed.value})
                effect.outbox += lifecycle.answer_run_wait(current, effect, RunStatus.killed)
                return effect

            records = []
            if self.sfn and self.outbox.sfn:
                records = [outbox.record("stop", arn=self.outbox.sfn.run_execution_arn(run_id),
                                         cause=f"run killed by {principal.actor}")]
            if self.sfn and self.outbox.queue:
                # However many tasks it has, the kill answers at once: the dispatcher cancels them.
                records.append(outbox.record("enqueue", body={"kind": "cancel", "run_id": run_id,
                                                              "actor": principal.actor}))
            committed = self.store.commit(run_id=run_id, actor=principal.actor, action="run.killed", entity=f"run:{run_id}",
                              data={"previous_status": status.value}, run_item=item, on_run=mark_killed,
                              operations=self.outbox.operations(records))
            self.outbox.deliver(records + committed.effect.outbox)
            if self.sfn and self.outbox.queue:
                return item_to_run(self.store.get_run_item(run_id) or item)
        self.cancel_open_tasks(run_id, principal.actor)
        return item_to_run(self.store.get_run_item(run_id) or item)

    def cancel_open_tasks(self, run_id: str, actor: str, limit: Optional[int] = None) -> int:
        """Cancel the run's open tasks, a chunk per transaction; at most ``limit`` of them (None: all).
        Returns how many were open when it started (more than ``limit`` means: call again)."""
        open_tasks = [t for t in self.store.iter_run_tasks(run_id) if not t.is_terminal]
        for start in range(0, min(len(open_tasks), limit or len(open_tasks)), CANCEL_CHUNK):
            chunk = open_tasks[start:start + CANCEL_CHUNK]
            for _attempt in range(10):
                now = clock.now_iso()
                changes = [c for c in (pipeline.cancel(t, now=now) for t in chunk) if c]
                if not changes:
                    break
                deltas: dict[str, int] = {}
                records = []
                for after, transition in changes:
                    for name, delta in counter_deltas(transition).items():
                        deltas[name] = deltas.get(name, 0) + delta
                    if after.started:
                        deltas[lifecycle.ACTIVE_COUNTER] = deltas.get(lifecycle.ACTIVE_COUNTER, 0) - 1
                        if self.outbox.sfn:
                            records.append(outbox.record("stop", arn=self.outbox.sfn.task_execution_arn(after.id),
                                                         cause="run killed"))
                answered = []
                for after, transition in changes:
                    before = next(t for t in chunk if t.id == after.id)
                    after, answers = lifecycle.answer_stage_job(before, after)
                    records += answers
                    answered.append((after, transition))
                changes = answered
                try:
                    self.store.commit(
                        run_id=run_id, actor=actor, action="tasks.cancelled", entity=f"run:{run_id}",
                        data={"task_ids": [after.id for after, _ in changes]},
                        operations=[*(self.store.task_put_op(after, after.version - 1) for after, _ in changes),
                                    *self.outbox.operations(records)],
                        counters=deltas)
                    self.outbox.deliver(records)
                    break
                except ConflictError:
                    # An agent moved one of them meanwhile: read them again and retry the chunk.
                    chunk = [t for t in (self.store.get_task(t.id) for t in chunk) if t]
        return len(open_tasks)


def parse_after(raw: Optional[str]) -> int:
    if raw is None or raw == "":
        return 0
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 11:
        raise InvalidInputError("after must be a sequence number (a whole number ≥ 0)", code="invalid_after")
    return int(raw)


__all__ = ["RunService", "new_task", "require_open_run", "require_task_room", "parse_after"]
