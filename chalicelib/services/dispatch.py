"""The dispatcher's use cases: what each message on the dispatch queue means.

Messages carry ids, never state; DynamoDB is read for the truth. Every handler is idempotent:
SQS delivers at least once, so a repeated message finds its work already recorded and changes
nothing (a stage job is keyed by its dispatch number; tokens are attached once).

Kinds
-----
``fill``      start task executions of a run up to its parallelism
``stage``     a task execution dispatched a stage job (with its task token): record the job and
              either put the task in the claim queue (``external`` executor: it waits for an agent,
              however long) or, for a ``container`` executor, claim it for the job's runner (the
              heartbeat clock starts there: a container that never starts loses the lease and the
              sweeper dispatches again) and launch the runner with a single-use launch code
``run_wait``/``release``  the run execution waits (for all tasks / for the release task)
``gate``      the run execution waits on an approval gate (``canary``, ``deploy``)
``cancel``    cancel the open tasks of a killed run (or one a gate rejected), a batch per message
``resume``    a gate let the run go on: release the tasks its canary held, launch the container
              jobs dispatched while it waited, fill its parallelism
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Callable, Optional

from pydantic import ValidationError

from ..adapters.dynamodb import Repositories, RunEffect
from ..domain import clock, ids
from ..domain.errors import ConflictError
from ..domain.entities import Task
from ..domain.director.facts import executor_for
from ..domain.enums import ApprovalStatus, RunStatus, TaskStatus
from ..domain.messages import (AnswerToken, CancelMessage, Enqueue, FillMessage, GateMessage, ResumeMessage,
                               RunWaitMessage, StageMessage, StartExecution, parse_dispatch_message)
from ..domain.pipeline import Transition
from ..domain.progress import counter_deltas
from ..domain.roles import Executor
from . import run_effects
from .api_keys import KeyService
from .outbox import Outbox
from .retries import on_fresh_read
from .roles import RoleService
from .tasks import TaskService

logger = logging.getLogger("baton.dispatch")

ACTOR = "system:dispatcher"
CANCEL_BATCH = 250


class LaunchError(Exception):
    """The agent could not be launched; the message is retried (and dead-lettered in the end)."""


class DispatchService:
    def __init__(self, repos: Repositories, tasks: TaskService, roles: RoleService, keys: KeyService,
                 outbox_: Outbox, launcher: Any, *, runs: Any = None, api_url: str = "",
                 launch_window_seconds: int = 300):
        self.repos = repos
        self.tasks = tasks
        self.roles = roles
        self.keys = keys
        self.outbox = outbox_
        self.launcher = launcher
        self.api_url = api_url
        self.launch_window_seconds = launch_window_seconds
        self.runs = runs

    def handle(self, body: dict[str, Any]) -> None:
        """Handle one queue message; a body that is no dispatch message is logged and dropped."""
        try:
            message = parse_dispatch_message(body)
        except ValidationError as error:
            logger.error("dropping a dispatch message that is none of the known kinds (%r): %s", body.get("kind"),
                         error.errors(include_url=False, include_input=False))
            return
        handlers: dict[type, Callable[[Any], None]] = {
            FillMessage: self.fill, StageMessage: self.stage, RunWaitMessage: self.run_wait, GateMessage: self.gate,
            CancelMessage: self.cancel, ResumeMessage: self.resume}
        handlers[type(message)](message)

    # ---- fill: start tasks up to the run's parallelism

    def fill(self, message: FillMessage) -> None:
        run_id = message.run_id
        while True:
            run_item = self.repos.runs.get_item(run_id)
            if run_item is None or RunStatus(run_item["status"]) != RunStatus.running:
                return
            slots = int(run_item.get("parallelism", 1)) - int(run_item.get(run_effects.ACTIVE_COUNTER, 0) or 0)
            if slots <= 0:
                return
            waiting = self.repos.tasks.awaiting_start(run_id, slots)
            if not waiting:
                return
            for task in waiting:
                if not self._start_task(task, run_item):
                    break

    def _start_task(self, task: Task, run_item: dict[str, Any]) -> bool:
        """Start one task's execution; False when the run has no free slot (or stopped running)."""
        current = self.repos.tasks.get(task.id)
        if current is None or not current.awaiting_start:
            return True
        started = current.model_copy(update={"awaiting_start": False, "started": True,
                                             "version": current.version + 1, "updated_at": clock.now_iso()})
        records = [StartExecution(machine="task", name=current.id,
                                  input={"task_id": current.id, "dispatch": 1, "attempt": 1})]

        def has_slot(item: dict[str, Any]) -> RunEffect:
            if RunStatus(item["status"]) != RunStatus.running:
                raise ConflictError("run not running", code="run_not_running")
            if int(item.get(run_effects.ACTIVE_COUNTER, 0) or 0) >= int(item.get("parallelism", 1)):
                raise ConflictError("no free slot", code="run_full")
            return RunEffect(counters={run_effects.ACTIVE_COUNTER: 1})

        try:
            self.repos.audit.commit(run_id=current.run_id, actor=ACTOR, action="task.started", entity=f"task:{current.id}",
                              data={"stage": current.stage.value},
                              operations=[self.repos.tasks.replace_op(started, current.version),
                                          *self.outbox.operations(records)], on_run=has_slot)
        except ConflictError as error:
            return error.code == "stale_version"  # someone else started it: go on with the next one
        self.outbox.deliver(records)
        return True

    # ---- stage: record the job, queue the task, launch the agent

    def stage(self, message: StageMessage) -> None:
        task_id, dispatch = message.task_id, message.dispatch

        def record() -> Optional[Task]:
            task = self.repos.tasks.get(task_id)
            if task is None:
                logger.error("stage job for unknown task %s dropped", task_id)
                return None
            if task.dispatch_seq == dispatch and not task.sfn_token and not task.is_terminal and task.execution:
                # A reconciled execution took over this job: its token is the one to answer now.
                attached = task.model_copy(update={"sfn_token": message.token, "version": task.version + 1,
                                                   "updated_at": clock.now_iso()})
                self.repos.tasks.replace(attached, task.version)
                return attached
            if task.dispatch_seq >= dispatch:
                return task   # a redelivery: recorded already
            if task.is_terminal:
                self.outbox.deliver([AnswerToken(token=message.token, output={"next": task.status.value})])
                return None
            self._record_job(task, dispatch, message.attempt, message.token)   # the task moved meanwhile: again
            return self.repos.tasks.get(task_id) or task

        recorded = on_fresh_read(record)
        if recorded is not None:
            self._ensure_launched(recorded, dispatch)

    def _record_job(self, task: Task, dispatch: int, attempt: int, token: str) -> None:
        run_item = self.repos.runs.get_item(task.run_id) or {}
        config = self.roles.pinned_for_stage(run_item, task.stage)
        now = clock.now_iso()
        job_id = f"{ids.JOB}_{task.id.split('_', 1)[1]}_{dispatch:04d}"
        fields: dict[str, Any] = {
            "status": TaskStatus.queued, "claimed_by": None, "claim_id": None, "lease_expires_at": None,
            "enqueued_at": now, "dispatch_seq": dispatch, "attempt": attempt, "job_id": job_id,
            "sfn_token": token, "version": task.version + 1, "updated_at": now}
        # A container job is launched only while its run is running: dispatched while the run waits
        # at a gate (the budget's), it stays queued until the run resumes (``resume``). A task the
        # director paused keeps its job (and token) out of the queue until a person resumes it; a job
        # the director reassigned runs with the executor it was moved to.
        executor = Executor(executor_for(task, config.executor.value))
        container = executor == Executor.container and run_item.get("status") == RunStatus.running.value \
            and task.held is None
        if container:
            # Claimed for the job's runner now: the launch window is the first lease.
            fields.update(status=TaskStatus.in_progress, claimed_by=job_id, claim_id=f"{ids.CLAIM}_{secrets.token_hex(12)}",
                          lease_expires_at=clock.plus_seconds(now, self.launch_window(config)), enqueued_at=None)
        after = task.model_copy(update=fields)
        transition = Transition("job.dispatched" if attempt == 1 else "job.redispatched", task.stage, after.stage,
                                task.status, after.status)
        job = {"job_id": job_id, "task_id": task.id, "run_id": task.run_id, "project_id": task.project_id,
               "dispatch": dispatch, "stage": task.stage.value, "iteration": task.iteration, "attempt": attempt,
               "role": config.role.value, "role_version": config.version, "role_digest": config.digest,
               "executor": executor.value, "status": "dispatched", "created_at": now, "token": token}
        self.repos.audit.commit(run_id=task.run_id, actor=ACTOR, action=transition.action, entity=f"task:{task.id}",
                          data={"job_id": job_id, "stage": task.stage.value, "iteration": task.iteration,
                                "attempt": attempt, "executor": executor.value,
                                **({"held": task.held.value} if task.held else {}),
                                "released_claim_of": task.claimed_by,
                                **({"lease_expires_at": after.lease_expires_at} if container else {})},
                          operations=[self.repos.tasks.replace_op(after, task.version), self.repos.jobs.create_op(job)],
                          counters=counter_deltas(transition), run_item=run_item)

    def _claim_for_runner(self, task: Task) -> None:
        """A container job dispatched while its run waited: claimed for its runner now, then launched."""
        run_item = self.repos.runs.get_item(task.run_id) or {}
        config = self.roles.pinned_for_stage(run_item, task.stage)
        if executor_for(task, config.executor.value) != Executor.container.value or task.status != TaskStatus.queued \
                or not task.job_id or task.held is not None:
            return
        now = clock.now_iso()
        after = task.model_copy(update={
            "status": TaskStatus.in_progress, "claimed_by": task.job_id, "claim_id": f"{ids.CLAIM}_{secrets.token_hex(12)}",
            "lease_expires_at": clock.plus_seconds(now, self.launch_window(config)), "enqueued_at": None,
            "version": task.version + 1, "updated_at": now})
        transition = Transition("task.claimed", task.stage, after.stage, task.status, after.status)

        def running(item: dict[str, Any]) -> None:
            if RunStatus(item["status"]) != RunStatus.running:
                raise ConflictError("run not running", code="run_not_running")

        try:
            self.repos.audit.commit(run_id=task.run_id, actor=ACTOR, action=transition.action, entity=f"task:{task.id}",
                                    data={"agent_id": task.job_id, "job_id": task.job_id,
                                          "lease_expires_at": after.lease_expires_at},
                                    operations=[self.repos.tasks.replace_op(after, task.version)],
                                    counters=counter_deltas(transition), on_run=running)
        except ConflictError:
            return   # an agent took it meanwhile, or the run stopped again
        self._ensure_launched(after, after.dispatch_seq)

    def launch_window(self, config: Any) -> int:
        """How long a launched runner has to start and take its claim over (its first lease)."""
        return max(self.launch_window_seconds, 2 * int(config.heartbeat_seconds))

    def _ensure_launched(self, task: Task, dispatch: int) -> None:
        job = self.repos.jobs.get(task.id, dispatch)
        if job is None or job.get("executor") != Executor.container.value or job.get("status") != "dispatched":
            return
        if task.dispatch_seq != dispatch or task.is_terminal or not task.claim_id:
            return
        run_item = self.repos.runs.get_item(task.run_id) or {}
        if RunStatus(run_item.get("status", RunStatus.killed.value)) != RunStatus.running:
            return   # a killed (or ended) run launches nothing more
        config = self.roles.pinned_for_stage(run_item, task.stage)
        code = self.keys.issue_launch_code(task, job["job_id"], claim_id=task.claim_id,
                                           expires_at=task.lease_expires_at or clock.now_iso(),
                                           token_seconds=config.timeout_seconds + 600)
        spec = {"job_id": job["job_id"], "task_id": task.id, "run_id": task.run_id, "project_id": task.project_id,
                "stage": task.stage.value, "iteration": task.iteration, "attempt": job["attempt"],
                "role": config.role.value, "role_digest": config.digest, "command": config.command,
                "image": config.image, "heartbeat_seconds": config.heartbeat_seconds,
                "timeout_seconds": config.timeout_seconds, "api_url": self.api_url, "launch_code": code}
        try:
            launch_id = self.launcher.launch(spec)
        except Exception as error:
            logger.warning("launch of job %s failed: %s", job["job_id"], error,
                           extra={"task_id": task.id, "run_id": task.run_id, "job_id": job["job_id"]})
            raise LaunchError(f"could not launch job {job['job_id']}: {error}") from error
        self.repos.jobs.mark_launched(task.id, dispatch, launched_at=clock.now_iso(), launch_id=str(launch_id))
        logger.info("launched job %s", job["job_id"],
                    extra={"task_id": task.id, "run_id": task.run_id, "job_id": job["job_id"]})

    # ---- cancel: a killed run's open tasks, a batch per message

    def cancel(self, message: CancelMessage) -> None:
        """Cancel up to ``CANCEL_BATCH`` open tasks of a killed run; ask again while more are left."""
        run_item = self.repos.runs.get_item(message.run_id)
        if run_item is None or RunStatus(run_item["status"]) not in (RunStatus.killed, RunStatus.failed):
            return
        if self.runs.cancel_open_tasks(message.run_id, message.actor, limit=CANCEL_BATCH) > CANCEL_BATCH:
            self.outbox.deliver([Enqueue(body=message)])

    # ---- resume: a gate let the run go on

    def resume(self, message: ResumeMessage) -> None:
        """Release up to ``CANCEL_BATCH`` held tasks (ask again while more are left), launch the
        container jobs that were dispatched while the run waited, and fill the run's slots."""
        run_item = self.repos.runs.get_item(message.run_id)
        if run_item is None or RunStatus(run_item["status"]) != RunStatus.running:
            return
        if self.runs.release_held(message.run_id, message.actor, limit=CANCEL_BATCH) >= CANCEL_BATCH:
            self.outbox.deliver([Enqueue(body=message)])
        for stage in [*run_item.get("stages", []), "cicd"]:
            for task in self.repos.tasks.queued_in_run(message.run_id, stage, CANCEL_BATCH):
                if task.job_id and task.sfn_token:
                    self._claim_for_runner(task)
        self.fill(FillMessage(run_id=message.run_id))

    # ---- the run execution's waits

    def run_wait(self, message: RunWaitMessage) -> None:
        """Attach the run execution's token, or answer at once if what it waits for happened."""
        run_id, token = message.run_id, message.token
        run_item = self.repos.runs.get_item(run_id)
        if run_item is None:
            return
        outcome = run_effects.wait_outcome(run_item)
        if outcome is not None:
            self.outbox.deliver([AnswerToken(token=token, output={"next": outcome})])
            return
        if run_item.get("wait_token") == token:
            return

        def attach(item: dict[str, Any]) -> RunEffect:
            now_outcome = run_effects.wait_outcome(item)
            if now_outcome is not None:
                return RunEffect(outbox=[AnswerToken(token=token, output={"next": now_outcome})])
            return RunEffect(set={"wait_token": token})

        committed = self.repos.audit.commit(run_id=run_id, actor=ACTOR, action=f"run.{message.kind}",
                                      entity=f"run:{run_id}", data={}, on_run=attach)
        self.outbox.deliver(committed.effect.outbox)

    def gate(self, message: GateMessage) -> None:
        """Open the gate with the run execution's token, or answer at once when it was decided
        (also when it is decided while being opened: the write fails and the decision is read)."""
        run_id, gate, token = message.run_id, message.gate, message.token

        def open_or_answer() -> None:
            approval = self.repos.approvals.get(run_id, gate)
            if approval is None:
                approval = {"run_id": run_id, "gate": gate, "status": ApprovalStatus.pending.value,
                            "requested_at": clock.now_iso()}
            if approval["status"] != ApprovalStatus.pending.value:
                decision = run_effects.gate_answer(gate, approval["status"] == ApprovalStatus.approved.value)
                self.outbox.deliver([AnswerToken(token=token, output={"next": decision})])
                return
            if approval.get("token") == token:
                return
            self.repos.audit.commit(run_id=run_id, actor=ACTOR, action="approval.requested", entity=f"run:{run_id}",
                                    data={"gate": gate}, operations=[self.repos.approvals.open_op({**approval,
                                                                                                   "token": token})])

        on_fresh_read(open_or_answer)



__all__ = ["DispatchService", "LaunchError"]
