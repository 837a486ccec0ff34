"""Runs: start a batch of tasks, watch its progress, read its audit log, kill it."""

from __future__ import annotations

from typing import Any, Optional

from ..adapters.dynamodb import Page, Repositories, RunEffect
from ..adapters.dynamodb.runs import item_to_run
from ..domain import canary, clock, ids, pipeline
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import ConflictError, InvalidInputError, NotFoundError, RuleViolationError
from ..domain.ids import is_valid_id, new_id
from ..domain.entities import Canary, Event, Progress, Run, Task
from ..domain.enums import CanaryState, Hold, RunStatus, TaskSource, TaskStatus
from ..domain.requests import RunCreate, TaskCreate
from ..domain.messages import CancelMessage, Enqueue, OutboxRecord, StartExecution, StopExecution
from ..domain.progress import counter_deltas, new_task_deltas, progress_from_counters
from . import run_effects
from .outbox import Outbox
from .projects import ProjectService
from .roles import RoleService
from .tasks import TaskService, canary_counters_of_new_task, held_back, new_task, require_open_run

CANCEL_CHUNK = 25


class RunService:
    def __init__(self, repos: Repositories, projects: ProjectService, roles: RoleService, outbox_: Outbox,
                 tasks: TaskService, *, sfn: bool, director: Any = None):
        self.director = director
        self.tasks = tasks
        self.repos = repos
        self.projects = projects
        self.roles = roles
        self.outbox = outbox_
        self.sfn = sfn

    # ---- reads

    def run_item(self, principal: Principal, run_id: str, action: Action = Action.read) -> dict[str, Any]:
        item = self.repos.runs.get_item(run_id) if is_valid_id(run_id, ids.RUN) else None
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
        return self.repos.runs.list(project_id, limit, cursor)

    def list_tasks(self, principal: Principal, run_id: str, limit: int, cursor: Optional[str],
                   stage: Optional[str], status: Optional[str]) -> Page:
        self.run_item(principal, run_id)
        return self.repos.tasks.list(run_id, limit, cursor, stage=stage, status=status)

    def events(self, principal: Principal, run_id: str, after: int, limit: int) -> list[Event]:
        self.run_item(principal, run_id)
        return self.repos.audit.events_after(run_id, after, limit)

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
        run = Run(id=new_id(ids.RUN), project_id=project_id, title=request.title, status=RunStatus.pending,
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
        selection = None
        if request.canary and tasks:
            run, tasks, selection = with_canary(run, tasks, request.canary)
            for task in tasks:
                for name, delta in canary_counters_of_new_task(task).items():
                    counters[name] = counters.get(name, 0) + delta
        self.repos.runs.create(run, tasks, counters, principal.actor)
        # Every task is written: the run starts (its execution, and the first tasks up to parallelism).
        records = []
        if self.sfn:
            records = [StartExecution(machine="run", name=run.id, input={"run_id": run.id}),
                       run_effects.fill_request(run.id)]
        self.repos.audit.commit(run_id=run.id, actor=principal.actor, action="run.started", entity=f"run:{run.id}",
                          data={"tasks": len(tasks), "pinned_roles": run.pinned_roles},
                          operations=self.outbox.operations(records),
                          on_run=lambda item: {"status": RunStatus.running.value})
        self.outbox.deliver(records)
        if selection is not None and request.canary:
            self.repos.audit.commit(
                run_id=run.id, actor=principal.actor, action="run.canary_selected", entity=f"run:{run.id}",
                data={"salt": run.canary_salt, "cutoff": selection.cutoff, "fraction": request.canary.fraction,
                      "min_tasks": request.canary.min_tasks, "selected": sorted(selection.task_ids),
                      "held": len(tasks) - len(selection.task_ids),
                      "recompute": "the tasks with the lowest sha256(f'{salt}:{task_id}'); later tasks join when "
                                   "their score <= cutoff"})
        return item_to_run(self.repos.runs.get_item(run.id) or {})

    def add_task(self, principal: Principal, run_id: str, request: TaskCreate, *,
                 source: TaskSource = TaskSource.manual, parent_task_id: Optional[str] = None,
                 action: Action = Action.manage_project) -> Task:
        item = self.run_item(principal, run_id, action)
        require_open_run(item)
        if item.get("release_task_id"):
            raise ConflictError(f"run {run_id} passed its deploy gate; start a new run for more work",
                                code="run_released")
        task, committed = self.tasks.create(item, title=request.title, description=request.description,
                                           priority=request.priority, source=source, parent_task_id=parent_task_id,
                                           actor=principal.actor)
        return task

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
                effect.outbox += run_effects.answer_run_wait(current, effect, RunStatus.killed)
                return effect

            records: list[OutboxRecord] = []
            if self.sfn and self.outbox.sfn:
                records = [StopExecution(arn=self.outbox.sfn.run_execution_arn(item.get("execution") or run_id),
                                         cause=f"run killed by {principal.actor}")]
            if self.sfn and self.outbox.queue:
                # However many tasks it has, the kill answers at once: the dispatcher cancels them.
                records.append(Enqueue(body=CancelMessage(run_id=run_id, actor=principal.actor)))
            committed = self.repos.audit.commit(run_id=run_id, actor=principal.actor, action="run.killed", entity=f"run:{run_id}",
                              data={"previous_status": status.value}, run_item=item, on_run=mark_killed,
                              operations=self.outbox.operations(records))
            self.outbox.deliver(records + committed.effect.outbox)
            if self.sfn and self.outbox.queue:
                return item_to_run(self.repos.runs.get_item(run_id) or item)
        self.cancel_open_tasks(run_id, principal.actor)
        return item_to_run(self.repos.runs.get_item(run_id) or item)

    def rollback(self, principal: Principal, run_id: str, reason: str) -> Task:
        """A rollback task (stage ``cicd``, for the cicd role) for a run that released: its inputs are
        the release task's outputs (``release_commit``, ``base_commit``). The run works again and
        ends ``rolled_back`` when the rollback is done (``failed`` if it fails)."""
        item = self.run_item(principal, run_id, Action.decide_approval)
        release = self.repos.tasks.get(item["release_task_id"]) if item.get("release_task_id") else None
        if RunStatus(item["status"]) != RunStatus.succeeded or release is None:
            raise ConflictError(f"run {run_id} is {item['status']}{'' if release else ' and never released'}; only a "
                                "succeeded run whose release task ran can be rolled back", code="run_not_released")
        if not release.outputs.get("release_commit"):
            raise ConflictError(f"the release task {release.id} of run {run_id} recorded no outputs.release_commit; "
                                "there is nothing to roll back to", code="no_release_commit")

        def released_and_ended(current: dict[str, Any]) -> None:
            if RunStatus(current["status"]) != RunStatus.succeeded or current.get("rollback_task_id"):
                raise ConflictError(f"run {run_id} is {current['status']} (or a rollback exists already)",
                                    code="run_not_released")

        task, _ = self.tasks.create(
            item, title=f"Rollback: {item['title']}"[:200],
            description=f"Roll back the release of run {run_id} ({release.outputs.get('release_commit')}), asked by "
                        f"{principal.actor}: {reason}"[:10_000], priority=10, source=TaskSource.rollback,
            parent_task_id=release.id, actor=principal.actor, check_run=released_and_ended,
            run_set_fn=lambda run, t: {"rollback_task_id": t}, event_data={"reason": reason},
            inputs={"release_task_id": release.id, **release.outputs})
        return task

    def release_held(self, run_id: str, actor: str, limit: Optional[int] = None) -> int:
        """Release the tasks the canary held back: they start like any other (a parallelism slot,
        or straight into the claim queue without Step Functions), a chunk per transaction, at most
        ``limit`` (None: all). Returns how many it released."""
        released, conflicts = 0, 0
        while limit is None or released < limit:
            batch = [t for t in self.repos.tasks.held(run_id, CANCEL_CHUNK) if t.held]
            if conflicts:   # the index may lag behind the table: check each against the table
                batch = [t for t in (self.repos.tasks.get(t.id) for t in batch) if t and t.held]
            if not batch:
                break
            now = clock.now_iso()
            afters = [t.model_copy(update={"held": None, "awaiting_start": self.sfn, "enqueued_at": None if self.sfn
                                           else now, "version": t.version + 1, "updated_at": now}) for t in batch]
            records = [run_effects.fill_request(run_id)] if self.sfn else []
            try:
                self.repos.audit.commit(
                    run_id=run_id, actor=actor, action="tasks.released", entity=f"run:{run_id}",
                    data={"task_ids": [t.id for t in afters], "reason": "canary approved"},
                    operations=[*(self.repos.tasks.replace_op(a, b.version) for a, b in zip(afters, batch)),
                                *self.outbox.operations(records)],
                    counters={canary.HELD: -len(afters)})
            except ConflictError:
                conflicts += 1
                if conflicts > 20:
                    raise
                continue
            self.outbox.deliver(records)
            released += len(afters)
        return released

    def cancel_open_tasks(self, run_id: str, actor: str, limit: Optional[int] = None) -> int:
        """Cancel the run's open tasks, a chunk per transaction; at most ``limit`` of them (None: all).
        Returns how many were open when it started (more than ``limit`` means: call again)."""
        open_tasks = [t for t in self.repos.tasks.of_run(run_id) if not t.is_terminal]
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
                    if after.held == Hold.canary:
                        deltas[canary.HELD] = deltas.get(canary.HELD, 0) - 1
                    if after.started:
                        deltas[run_effects.ACTIVE_COUNTER] = deltas.get(run_effects.ACTIVE_COUNTER, 0) - 1
                        if self.outbox.sfn:
                            records.append(StopExecution(arn=self.outbox.sfn.task_execution_arn(after.execution or after.id),
                                                         cause="run killed"))
                answered = []
                for after, transition in changes:
                    before = next(t for t in chunk if t.id == after.id)
                    after, answers = run_effects.answer_stage_job(before, after)
                    records += answers
                    answered.append((after, transition))
                changes = answered
                try:
                    self.repos.audit.commit(
                        run_id=run_id, actor=actor, action="tasks.cancelled", entity=f"run:{run_id}",
                        data={"task_ids": [after.id for after, _ in changes]},
                        operations=[*(self.repos.tasks.replace_op(after, after.version - 1) for after, _ in changes),
                                    *self.outbox.operations(records)],
                        counters=deltas)
                    self.outbox.deliver(records)
                    break
                except ConflictError:
                    # An agent moved one of them meanwhile: read them again and retry the chunk.
                    chunk = [t for t in (self.repos.tasks.get(t.id) for t in chunk) if t]
        return len(open_tasks)


def with_canary(run: Run, tasks: list[Task], config: Canary) -> tuple[Run, list[Task], canary.Selection]:
    """The run's canary chosen among the tasks it starts with: those go first, the rest is held
    back until the gate. When every task is in the canary nothing waits, and no gate is asked."""
    salt = canary.new_salt()
    selection = canary.select([t.id for t in tasks], salt, config.fraction, config.min_tasks)
    placed = [held_back(t, t.id in selection.task_ids, t.id not in selection.task_ids) for t in tasks]
    state = CanaryState.running if len(selection.task_ids) < len(tasks) else CanaryState.ended
    return (run.model_copy(update={"canary_salt": salt, "canary_cutoff": selection.cutoff, "canary_state": state}),
            placed, selection)


def parse_after(raw: Optional[str]) -> int:
    if raw is None or raw == "":
        return 0
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 11:
        raise InvalidInputError("after must be a sequence number (a whole number ≥ 0)", code="invalid_after")
    return int(raw)


__all__ = ["RunService", "parse_after"]
