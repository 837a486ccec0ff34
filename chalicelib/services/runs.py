"""Runs: start a batch of tasks, watch its progress, read its audit log, kill it."""

from __future__ import annotations

from typing import Any, Optional

from ..adapters.dynamo import BatonStore, Page, item_to_run
from ..domain import clock, pipeline
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import ConflictError, InvalidInputError, NotFoundError, RuleViolationError
from ..domain.ids import is_valid_id, new_id
from ..domain.models import (Event, Progress, Run, RunCreate, RunStatus, Task, TaskCreate, TaskSource,
                             TaskStatus, TERMINAL_RUN_STATUSES)
from ..domain.progress import apply_deltas, counter_deltas, new_task_deltas, progress_from_counters
from .orchestration import Orchestrator
from .projects import ProjectService

CANCEL_CHUNK = 40


def new_task(run: Run, *, title: str, description: str, priority: int, source: TaskSource,
             parent_task_id: Optional[str], now: str, enqueue: bool) -> Task:
    return Task(id=new_id("task"), run_id=run.id, project_id=run.project_id, title=title,
                description=description, priority=priority, stage=pipeline.first_stage(run.stages),
                status=TaskStatus.queued, iteration=1, source=source, parent_task_id=parent_task_id,
                created_at=now, updated_at=now, enqueued_at=now if enqueue else None)


def require_open_run(run_item: dict[str, Any]) -> None:
    status = RunStatus(run_item["status"])
    if status in TERMINAL_RUN_STATUSES:
        raise ConflictError(f"run {run_item['id']} is {status.value}; it takes no more work", code="run_ended")


class RunService:
    def __init__(self, store: BatonStore, projects: ProjectService, orchestrator: Orchestrator):
        self.store = store
        self.projects = projects
        self.orchestrator = orchestrator

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
        run = Run(id=new_id("run"), project_id=project_id, title=request.title, status=RunStatus.pending,
                  stages=request.stages, max_iterations=request.max_iterations, parallelism=request.parallelism,
                  canary=request.canary, ceilings=ceilings, deploy_gate=request.deploy_gate,
                  created_at=now, created_by=principal.actor, updated_at=now)
        enqueue = self.orchestrator.enqueue_on_entry
        tasks = [new_task(run, title=t.title, description=t.description, priority=t.priority,
                          source=TaskSource.manual, parent_task_id=None, now=now, enqueue=enqueue)
                 for t in request.tasks]
        counters = new_task_deltas(pipeline.first_stage(run.stages), TaskStatus.queued, len(tasks)) if tasks else {}
        self.store.create_run(run, tasks, counters, principal.actor)
        # Every task is written: the run starts. An empty run waits for tasks to be added.
        self.store.commit(run_id=run.id, actor=principal.actor, action="run.started", entity=f"run:{run.id}",
                          data={"tasks": len(tasks)},
                          on_run=lambda item: {"status": RunStatus.running.value})
        run = item_to_run(self.store.get_run_item(run.id) or {})
        self.orchestrator.run_started(run)
        self.orchestrator.tasks_entered(run, tasks)
        return run

    def add_task(self, principal: Principal, run_id: str, request: TaskCreate, *,
                 source: TaskSource = TaskSource.manual, parent_task_id: Optional[str] = None,
                 action: Action = Action.manage_project) -> Task:
        item = self.run_item(principal, run_id, action)
        require_open_run(item)
        run = item_to_run(item)
        task = new_task(run, title=request.title, description=request.description, priority=request.priority,
                        source=source, parent_task_id=parent_task_id, now=clock.now_iso(),
                        enqueue=self.orchestrator.enqueue_on_entry)
        deltas = new_task_deltas(task.stage, task.status)

        def reopen(current: dict[str, Any]) -> dict[str, Any]:
            require_open_run(current)
            return {"status": RunStatus.running.value}

        self.store.commit(run_id=run_id, actor=principal.actor, action="task.created", entity=f"task:{task.id}",
                          data={"title": task.title, "source": source.value, "parent_task_id": parent_task_id,
                                "priority": task.priority},
                          operations=[self.store.task_put_op(task, None)], counters=deltas, run_item=item,
                          on_run=reopen)
        self.orchestrator.tasks_entered(run, [task])
        return task

    def kill(self, principal: Principal, run_id: str) -> Run:
        """Soft kill: the run becomes ``killed`` and its open tasks ``cancelled``; nothing is deleted."""
        item = self.run_item(principal, run_id, Action.manage_project)
        status = RunStatus(item["status"])
        if status in (RunStatus.succeeded, RunStatus.failed):
            raise ConflictError(f"run {run_id} already ended {status.value}; there is nothing to kill",
                                code="run_ended")
        if status != RunStatus.killed:
            def mark_killed(current: dict[str, Any]) -> dict[str, Any]:
                if RunStatus(current["status"]) in (RunStatus.succeeded, RunStatus.failed):
                    raise ConflictError(f"run {run_id} ended while it was being killed", code="run_ended")
                return {"status": RunStatus.killed.value}

            self.store.commit(run_id=run_id, actor=principal.actor, action="run.killed", entity=f"run:{run_id}",
                              data={"previous_status": status.value}, run_item=item, on_run=mark_killed)
        self._cancel_open_tasks(run_id, principal.actor)
        run = item_to_run(self.store.get_run_item(run_id) or item)
        self.orchestrator.run_killed(run)
        return run

    def _cancel_open_tasks(self, run_id: str, actor: str) -> None:
        open_tasks = [t for t in self.store.iter_run_tasks(run_id) if not t.is_terminal]
        for start in range(0, len(open_tasks), CANCEL_CHUNK):
            chunk = open_tasks[start:start + CANCEL_CHUNK]
            for _attempt in range(10):
                now = clock.now_iso()
                changes = [c for c in (pipeline.cancel(t, now=now) for t in chunk) if c]
                if not changes:
                    break
                deltas: dict[str, int] = {}
                for _, transition in changes:
                    for name, delta in counter_deltas(transition).items():
                        deltas[name] = deltas.get(name, 0) + delta
                try:
                    self.store.commit(
                        run_id=run_id, actor=actor, action="tasks.cancelled", entity=f"run:{run_id}",
                        data={"task_ids": [after.id for after, _ in changes]},
                        operations=[self.store.task_put_op(after, after.version - 1) for after, _ in changes],
                        counters=deltas)
                    break
                except ConflictError:
                    # An agent moved one of them meanwhile: read them again and retry the chunk.
                    chunk = [t for t in (self.store.get_task(t.id) for t in chunk) if t]


def parse_after(raw: Optional[str]) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or len(raw) > 12:
        raise InvalidInputError("after must be a sequence number (a whole number ≥ 0)", code="invalid_after")
    return int(raw)


__all__ = ["RunService", "new_task", "require_open_run", "parse_after", "apply_deltas"]
