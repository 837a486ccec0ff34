"""Tasks: read, claim from the queue, heartbeat, advance through the stages, set a stage by hand."""

from __future__ import annotations

import random
import secrets
from typing import Any, Callable, Optional

from ..adapters.dynamo import BatonStore, Committed
from ..domain import clock, pipeline
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import ConflictError, InvalidInputError, NotFoundError
from ..domain.ids import is_valid_id
from ..domain.models import (AdvanceRequest, Claim, ClaimRequest, HeartbeatRequest, RunStatus, SetStageRequest,
                             Stage, Task, TaskSource)
from ..domain.pipeline import Transition
from . import lifecycle, outbox
from .outbox import Outbox
from .roles import RoleService

CANDIDATES_PER_QUERY = 10
CLAIM_ROUNDS = 5
STALE_RETRIES = 5


def task_stages(task: Task, run_item: dict[str, Any]) -> list[Stage]:
    """The stages a task walks: the run's, or the single ``cicd`` stage of its release task."""
    if task.source == TaskSource.release:
        return [Stage.cicd]
    return [Stage(s) for s in run_item["stages"]]


def spread(candidates: list[Task]) -> list[Task]:
    """Candidates in priority order, shuffled among equals, so concurrent claimers do not all
    race for the same task first (each loss costs a transaction)."""
    tiers: dict[int, list[Task]] = {}
    for task in candidates:
        tiers.setdefault(task.priority, []).append(task)
    ordered: list[Task] = []
    for priority in sorted(tiers, reverse=True):
        tier = tiers[priority]
        random.shuffle(tier)
        ordered += tier
    return ordered


class TaskService:
    def __init__(self, store: BatonStore, roles: RoleService, outbox_: Outbox, *, sfn: bool):
        self.store = store
        self.roles = roles
        self.outbox = outbox_
        self.sfn = sfn

    # ---- reads

    def get(self, principal: Principal, task_id: str, action: Action = Action.read) -> Task:
        task = self.store.get_task(task_id) if is_valid_id(task_id, "task") else None
        if task is None:
            raise NotFoundError("task not found")
        authorize(principal, action, project_id=task.project_id, task_id=task.id, what="task")
        return task

    # ---- the one way a task changes: domain decision + audited transaction + callbacks

    def timing_for(self, run_item: dict[str, Any]) -> lifecycle.Timing:
        def timing(stage: Stage) -> tuple[int, int]:
            config = self.roles.pinned_for_stage(run_item, stage)
            return config.heartbeat_seconds, config.timeout_seconds
        return timing

    def commit_change(self, before: Task, after: Task, transition: Transition, actor: str, data: dict[str, Any],
                      run_item: Optional[dict[str, Any]] = None,
                      check_run: Optional[Callable[[dict[str, Any]], None]] = None,
                      extra_operations: tuple[dict[str, Any], ...] = (),
                      answer_job: bool = True, reopen: bool = False) -> tuple[Task, Committed]:
        """Write ``before`` → ``after`` with its audit event and run consequences, in one transaction.
        ``answer_job=False`` keeps the stage job waiting (a lease that expired re-queues the same job)."""
        run_item = run_item or self.store.get_run_item(before.run_id) or {}
        records: list[dict[str, Any]] = []
        if answer_job:
            after, records = lifecycle.answer_stage_job(before, after, self.timing_for(run_item))
        effect_of = lifecycle.run_effect(before, after, transition, sfn=self.sfn,
                                         store_approval_op=self._approval_op, reopen=reopen)

        def on_run(current: dict[str, Any]):
            if check_run:
                check_run(current)
            return effect_of(current)

        committed = self.store.commit(
            run_id=before.run_id, actor=actor, action=transition.action, entity=f"task:{before.id}",
            data={"from_stage": transition.from_stage.value, "to_stage": transition.to_stage.value,
                  "from_status": transition.from_status.value, "to_status": transition.to_status.value,
                  "iteration": after.iteration, **data},
            operations=[self.store.task_put_op(after, before.version), *extra_operations,
                        *self.outbox.operations(records)],
            counters=lifecycle.counter_deltas(transition), run_item=run_item, on_run=on_run)
        self.outbox.deliver(records + committed.effect.outbox)
        return after, committed

    def _approval_op(self, approval: dict[str, Any]) -> dict[str, Any]:
        """Open the gate; a gate already pending (the run was reopened by a new task) stays open."""
        op = self.store.approval_put_op(approval, "attribute_not_exists(pk) OR #st = :pending",
                                        {":pending": "pending"})
        op["Put"]["ExpressionAttributeNames"] = {"#st": "status"}
        return op

    # ---- claim

    def claim(self, principal: Principal, request: ClaimRequest) -> Optional[tuple[Task, Claim]]:
        """Claim the best queued task at ``request.stage``; None when nothing is queued.

        Candidates come from the sparse queue index (and expired leases); each is taken with a
        conditional write on the version read, so of two claimers exactly one wins and the other
        moves on to the next candidate.
        """
        task_id = request.task_id or principal.task_id  # a job token naming another task: 404
        if task_id:
            task = self.get(principal, task_id, Action.work)
            if not pipeline.is_claimable(task, request.stage, clock.now_iso()) or \
                    (self.sfn and not task.enqueued_at and task.status.value == "queued"):
                return None
            return self._claim_one(principal, task, request)
        if request.project_id:
            authorize(principal, Action.work, project_id=request.project_id, what="project")
            project_ids = [request.project_id]
        elif principal.is_admin:
            raise InvalidInputError("an admin key serves every project: give project_id to say which queue "
                                    "to claim from", code="project_id_required")
        else:
            authorize(principal, Action.work)
            project_ids = list(principal.project_ids)
        if request.run_id is not None and not is_valid_id(request.run_id, "run"):
            raise InvalidInputError("run_id is not a run id", code="invalid_id")
        for project_id in project_ids:
            for _round in range(CLAIM_ROUNDS):
                now = clock.now_iso()
                candidates = self.store.queue_candidates(project_id, request.stage.value, CANDIDATES_PER_QUERY,
                                                         run_id=request.run_id)
                if len(candidates) < CANDIDATES_PER_QUERY:
                    candidates += [t for t in self.store.expired_leases(project_id, request.stage.value, now, 5)
                                   if request.run_id is None or t.run_id == request.run_id]
                if not candidates:
                    break
                for candidate in spread(candidates):
                    try:
                        return self._claim_one(principal, candidate, request)
                    except ConflictError:
                        continue  # lost the race, or its run is not running: try the next one
        return None

    def _claim_one(self, principal: Principal, task: Task, request: ClaimRequest) -> tuple[Task, Claim]:
        now = clock.now_iso()
        after, transition = pipeline.claim(task, stage=request.stage, agent_id=request.agent_id,
                                           claim_id="clm_" + secrets.token_hex(12), now=now,
                                           lease_seconds=request.lease_seconds)

        def running(current: dict[str, Any]) -> None:
            if RunStatus(current["status"]) != RunStatus.running:
                raise ConflictError(f"run {task.run_id} is {current['status']}; its tasks cannot be claimed",
                                    code="run_not_running")

        # A claim is the job's first sign of life: it counts as a heartbeat of the stage job.
        beat = (outbox.record("task_heartbeat", token=task.sfn_token),) if task.sfn_token else ()
        after, _ = self.commit_change(task, after, transition, principal.actor,
                                      {"agent_id": request.agent_id, "lease_expires_at": after.lease_expires_at},
                                      check_run=running, extra_operations=tuple(self.outbox.operations(beat)))
        self.outbox.deliver(list(beat))
        return after, Claim(claim_id=after.claim_id or "", expires_at=after.lease_expires_at or "")

    # ---- heartbeat, advance, set-stage

    def heartbeat(self, principal: Principal, task_id: str, request: HeartbeatRequest) -> str:
        """Extend the lease (and the stage job's heartbeat); 409 unless ``claim_id`` holds it.
        Not an audit event: nothing moved. A concurrent write by the same claimant (an upload, an
        advance) is retried on the fresh version; a lost lease is not."""
        for attempt in range(STALE_RETRIES):
            task = self.get(principal, task_id, Action.work)
            after = pipeline.heartbeat(task, claim_id=request.claim_id, now=clock.now_iso(),
                                       lease_seconds=request.lease_seconds)
            records = [outbox.record("task_heartbeat", token=task.sfn_token)] if task.sfn_token else []
            try:
                self.store.replace_task(after, task.version, self.outbox.operations(records))
            except ConflictError as error:
                if error.code == "stale_version" and attempt + 1 < STALE_RETRIES:
                    continue
                raise
            self.outbox.deliver(records)
            return after.lease_expires_at or ""
        raise AssertionError("unreachable")

    def advance(self, principal: Principal, task_id: str, request: AdvanceRequest,
                extra_operations: tuple[dict[str, Any], ...] = (),
                check: Optional[Callable[[Task, dict[str, Any]], None]] = None) -> Task:
        """Finish the claimant's stage: pass → next stage, fail → loop back (or failed). Retried on
        a fresh read when only the version moved (the claimant's own heartbeat); the lease is
        checked again each time, so a stale claim still changes nothing."""
        for attempt in range(STALE_RETRIES):
            task = self.get(principal, task_id, Action.work)
            pipeline.check_lease(task, request.claim_id, clock.now_iso())
            run_item = self.store.get_run_item(task.run_id) or {}
            if check:
                check(task, run_item)
            after, transition = pipeline.advance(
                task, claim_id=request.claim_id, result=request.result, stages=task_stages(task, run_item),
                max_iterations=int(run_item["max_iterations"]), now=clock.now_iso())
            try:
                after, _ = self.commit_change(task, after, transition, principal.actor,
                                              {"result": request.result.value, "notes": request.notes[:2000],
                                               "agent_id": task.claimed_by}, run_item=run_item,
                                              extra_operations=extra_operations)
            except ConflictError as error:
                if error.code == "stale_version" and attempt + 1 < STALE_RETRIES:
                    continue
                raise
            return after
        raise AssertionError("unreachable")

    def set_stage(self, principal: Principal, task_id: str, request: SetStageRequest) -> Task:
        task = self.get(principal, task_id, Action.set_stage)
        run_item = self.store.get_run_item(task.run_id) or {}
        if RunStatus(run_item["status"]) in (RunStatus.killed, RunStatus.succeeded, RunStatus.failed):
            raise ConflictError(f"run {task.run_id} is {run_item['status']}; its tasks cannot move",
                                code="run_ended")
        if task.is_terminal and self.sfn:
            raise ConflictError(f"task {task.id} already ended {task.status.value}; add a new task instead",
                                code="task_ended")
        after, transition = pipeline.set_stage(task, stage=request.stage, stages=task_stages(task, run_item),
                                               now=clock.now_iso())
        if self.sfn:
            after = after.model_copy(update={"enqueued_at": None})  # claimable once the new stage is dispatched
        after, _ = self.commit_change(task, after, transition, principal.actor, {"reason": request.reason},
                                      run_item=run_item, reopen=True)
        return after
