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
from ..domain.models import (AdvanceRequest, Claim, ClaimRequest, HeartbeatRequest, PrincipalKind, RunStatus,
                             SetStageRequest, Stage, Task, TaskSource, TaskStatus)
from ..domain.pipeline import Transition
from . import lifecycle, outbox
from .outbox import Outbox
from .roles import RoleService

CANDIDATES_PER_QUERY = 10
CLAIM_ROUNDS = 5
STALE_RETRIES = 5


def require_live_claim(principal: Principal, task: Task, now: str) -> None:
    """Agents write evidence only under a live claim of the task (409 ``claim_not_held``)."""
    if principal.kind != PrincipalKind.agent:
        return
    claim = principal.claim_id
    other_key = principal.task_id is None and task.claimed_with_key != principal.key_id
    if not claim or task.claim_id != claim or other_key or task.status != TaskStatus.in_progress \
            or not pipeline.lease_is_live(task, now):
        hint = ("send the claim you hold in the header 'Baton-Claim: <claim_id>'" if principal.task_id is None
                else "the job's claim is no longer live")
        raise ConflictError(f"an agent writes evidence on task {task.id} only while it holds a live claim of it; "
                            f"{hint}", code="claim_not_held")


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
    def __init__(self, store: BatonStore, roles: RoleService, outbox_: Outbox, *, sfn: bool, max_attempts: int = 3):
        self.store = store
        self.roles = roles
        self.outbox = outbox_
        self.sfn = sfn
        self.max_attempts = max_attempts

    # ---- reads

    def get(self, principal: Principal, task_id: str, action: Action = Action.read) -> Task:
        task = self.store.get_task(task_id) if is_valid_id(task_id, "task") else None
        if task is None:
            raise NotFoundError("task not found")
        authorize(principal, action, project_id=task.project_id, task_id=task.id, what="task")
        return task

    def get_for_evidence(self, principal: Principal, task_id: str) -> Task:
        """The task, for writing evidence on it (handoffs, proofs, findings, usage, state).

        An agent writes evidence only under its live claim of the task: a job token's own claim, or
        for an agent key the claim it names with ``Baton-Claim``. Humans and admins may always
        attach evidence; it is recorded with their actor.
        """
        task = self.get(principal, task_id, Action.work)
        require_live_claim(principal, task, clock.now_iso())
        return task

    # ---- the one way a task changes: domain decision + audited transaction + callbacks

    def commit_change(self, before: Task, after: Task, transition: Transition, actor: str, data: dict[str, Any],
                      run_item: Optional[dict[str, Any]] = None,
                      check_run: Optional[Callable[[dict[str, Any]], None]] = None,
                      extra_operations: tuple[dict[str, Any], ...] = (),
                      answer_job: bool = True, reopen: bool = False, next_attempt: int = 1) -> tuple[Task, Committed]:
        """Write ``before`` → ``after`` with its audit event and run consequences, in one transaction.
        ``answer_job=False`` keeps the stage job waiting (without Step Functions, a lease that
        expired re-queues the same job); ``next_attempt`` > 1 re-dispatches the same stage."""
        run_item = run_item or self.store.get_run_item(before.run_id) or {}
        records: list[dict[str, Any]] = []
        if answer_job:
            after, records = lifecycle.answer_stage_job(before, after, attempt=next_attempt)
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

        Candidates come from a sparse queue index: the run's own queue when ``run_id`` is given
        (O(1) items read however many tasks other runs have queued), else the project's (and its
        expired leases). Each is taken with a conditional write on the version read, so of two
        claimers exactly one wins and the other moves on to the next candidate.
        """
        task_id = request.task_id or principal.task_id  # a job token naming another task: 404
        if task_id:
            task = self.get(principal, task_id, Action.work)
            now = clock.now_iso()
            if principal.claim_id and task.claim_id == principal.claim_id and pipeline.lease_is_live(task, now):
                return self._reclaim(task, principal.claim_id, request)   # the job's own claim, made at launch
            if not pipeline.is_claimable(task, request.stage, now) or \
                    (self.sfn and not task.enqueued_at and task.status.value == "queued"):
                return None
            return self._claim_one(principal, task, request)
        if request.run_id is not None:
            return self._claim_from(principal, request, [(None, request.run_id)])
        if request.project_id:
            authorize(principal, Action.work, project_id=request.project_id, what="project")
            project_ids = [request.project_id]
        elif principal.is_admin:
            raise InvalidInputError("an admin key serves every project: give project_id or run_id to say which "
                                    "queue to claim from", code="project_id_required")
        else:
            authorize(principal, Action.work)
            project_ids = list(principal.project_ids)
        return self._claim_from(principal, request, [(p, None) for p in project_ids])

    def _claim_from(self, principal: Principal, request: ClaimRequest,
                    queues: list[tuple[Optional[str], Optional[str]]]) -> Optional[tuple[Task, Claim]]:
        """Try the queues in order: ``(project_id, None)`` a project's, ``(None, run_id)`` a run's."""
        for project_id, run_id in queues:
            if run_id is not None:
                if not is_valid_id(run_id, "run"):
                    raise InvalidInputError("run_id is not a run id", code="invalid_id")
                run_item = self.store.get_run_item(run_id)
                if run_item is None:
                    raise NotFoundError("run not found")
                authorize(principal, Action.work, project_id=run_item["project_id"], what="run")
            for _round in range(CLAIM_ROUNDS):
                now = clock.now_iso()
                if run_id is not None:
                    candidates = self.store.run_queue_candidates(run_id, request.stage.value, CANDIDATES_PER_QUERY)
                else:
                    candidates = self.store.queue_candidates(str(project_id), request.stage.value,
                                                             CANDIDATES_PER_QUERY)
                    if len(candidates) < CANDIDATES_PER_QUERY and not self.sfn:
                        candidates += self.store.expired_leases(str(project_id), request.stage.value, now, 5)
                if not candidates:
                    break
                for candidate in spread(candidates):
                    try:
                        return self._claim_one(principal, candidate, request)
                    except ConflictError:
                        continue  # lost the race, or its run is not running: try the next one
        return None

    def _reclaim(self, task: Task, claim_id: str, request: ClaimRequest) -> tuple[Task, Claim]:
        """A container job is claimed for its runner when it is launched (the heartbeat clock starts
        there); the runner's own claim call gets that claim back, with the lease it asks for."""
        for attempt in range(STALE_RETRIES):
            after = pipeline.heartbeat(task, claim_id=claim_id, now=clock.now_iso(), lease_seconds=request.lease_seconds)
            try:
                self.store.replace_task(after, task.version)
            except ConflictError as error:
                if error.code == "stale_version" and attempt + 1 < STALE_RETRIES:
                    task = self.store.get_task(task.id) or task
                    continue
                raise
            return after, Claim(claim_id=claim_id, expires_at=after.lease_expires_at or "")
        raise AssertionError("unreachable")

    def _claim_one(self, principal: Principal, task: Task, request: ClaimRequest) -> tuple[Task, Claim]:
        now = clock.now_iso()
        after, transition = pipeline.claim(task, stage=request.stage, agent_id=request.agent_id,
                                           claim_id="clm_" + secrets.token_hex(12), now=now,
                                           lease_seconds=request.lease_seconds)
        after = after.model_copy(update={"claimed_with_key": principal.key_id})

        def running(current: dict[str, Any]) -> None:
            if RunStatus(current["status"]) != RunStatus.running:
                raise ConflictError(f"run {task.run_id} is {current['status']}; its tasks cannot be claimed",
                                    code="run_not_running")

        after, _ = self.commit_change(task, after, transition, principal.actor,
                                      {"agent_id": request.agent_id, "lease_expires_at": after.lease_expires_at},
                                      check_run=running)
        return after, Claim(claim_id=after.claim_id or "", expires_at=after.lease_expires_at or "")

    # ---- heartbeat, advance, set-stage

    def heartbeat(self, principal: Principal, task_id: str, request: HeartbeatRequest) -> str:
        """Extend the lease; 409 unless ``claim_id`` holds it. The lease is the stage job's
        liveness (the sweeper re-dispatches a job whose lease expired), so nothing else is told.
        Not an audit event: nothing moved. A concurrent write by the same claimant (an upload, an
        advance) is retried on the fresh version; a lost lease is not."""
        for attempt in range(STALE_RETRIES):
            task = self.get(principal, task_id, Action.work)
            after = pipeline.heartbeat(task, claim_id=request.claim_id, now=clock.now_iso(),
                                       lease_seconds=request.lease_seconds)
            try:
                self.store.replace_task(after, task.version)
            except ConflictError as error:
                if error.code == "stale_version" and attempt + 1 < STALE_RETRIES:
                    continue
                raise
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

    def expire_lease(self, task: Task, actor: str = "system:sweeper") -> Optional[Task]:
        """A claimed job whose lease ran out: with Step Functions the job is dispatched again (attempt
        + 1, or the task fails when none is left); without, the task is queued again for any agent.
        None when it changed meanwhile (nothing to do)."""
        now = clock.now_iso()
        data = {"expired_lease_of": task.claimed_by, "lease_expires_at": task.lease_expires_at}
        try:
            if self.sfn and task.sfn_token:
                change = pipeline.give_up_silent_job(task, now=now, max_attempts=self.max_attempts)
                if change is None:
                    return None
                after, transition, attempt = change
                after, _ = self.commit_change(task, after, transition, actor, {**data, "attempt": task.attempt},
                                              next_attempt=attempt)
                return after
            plain = pipeline.expire_lease(task, now=now)
            if plain is None:
                return None
            after, _ = self.commit_change(task, plain[0], plain[1], actor, data, answer_job=False)
            return after
        except ConflictError:
            return None

    def report_waiting(self, task: Task, actor: str = "system:sweeper") -> bool:
        """A task unclaimed past its run's queue timeout is reported (``task.waiting_for_agent``) and
        keeps waiting: nothing about it fails. False when it changed meanwhile."""
        if task.status != TaskStatus.queued or not task.enqueued_at or task.wait_reported_for == task.enqueued_at:
            return False
        now = clock.now_iso()
        after = task.model_copy(update={"wait_reported_for": task.enqueued_at, "version": task.version + 1,
                                        "updated_at": now})
        transition = Transition("task.waiting_for_agent", task.stage, task.stage, task.status, task.status)
        waited = int((clock.parse_iso(now) - clock.parse_iso(task.enqueued_at)).total_seconds())
        try:
            self.commit_change(task, after, transition, actor,
                               {"waiting_since": task.enqueued_at, "waited_seconds": waited,
                                "queue_timeout_seconds": task.queue_timeout_seconds,
                                "stage": task.stage.value, "job_id": task.job_id}, answer_job=False)
        except ConflictError:
            return False
        return True

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
