"""Tasks: read, claim from the queue, heartbeat, advance through the stages, set a stage by hand."""

from __future__ import annotations

import json
import random
import secrets
from typing import Any, Callable, Optional

from ..adapters.dynamodb import Committed, Repositories
from ..adapters.dynamodb.runs import item_to_run
from ..domain import canary, clock, ids, pipeline
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import ConflictError, InvalidInputError, NotFoundError, RuleViolationError
from ..domain.ids import is_valid_id, new_id
from ..domain.entities import AttentionItem, Claim, Run, Task
from ..domain.enums import (TERMINAL_RUN_STATUSES, AdvanceResult, AttentionKind, Hold, PrincipalKind, RunStatus, Stage,
                            TaskSource, TaskStatus)
from ..domain.requests import MAX_OUTPUTS_BYTES, AdvanceRequest, ClaimRequest, HeartbeatRequest, SetStageRequest
from ..domain.messages import AnswerToken
from ..domain.pipeline import Transition
from ..domain.director.facts import after_lease_loss, failed_stage
from ..domain.progress import TOTAL_COUNTER, new_task_deltas
from . import run_effects
from .attention import gate_opener
from .director import ClaimAttempts
from .director_actions import pause_resolution_ops
from .outbox import Outbox
from .retries import on_fresh_read
from .roles import RoleService

CANDIDATES_PER_QUERY = 10
CLAIM_ROUNDS = 5


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
        raise ConflictError(f"an agent writes handoffs, proofs and findings on task {task.id} only while it holds a "
                            f"live claim of it; {hint}", code="claim_not_held")


def task_stages(task: Task, run_item: dict[str, Any]) -> list[Stage]:
    """The stages a task walks: the run's, or the single ``cicd`` stage of its release task."""
    if task.source in (TaskSource.release, TaskSource.rollback):
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


def new_task(run: Run, *, title: str, description: str, priority: int, source: TaskSource,
             parent_task_id: Optional[str], now: str, sfn: bool) -> Task:
    """A task at its first stage: claimable at once in plain mode; in Step Functions mode it
    waits for a parallelism slot, then for its stage job to be dispatched."""
    stage = Stage.cicd if source in (TaskSource.release, TaskSource.rollback) else pipeline.first_stage(run.stages)
    return Task(id=new_id(ids.TASK), run_id=run.id, project_id=run.project_id, title=title,
                description=description, priority=priority, stage=stage,
                status=TaskStatus.queued, iteration=1, source=source, parent_task_id=parent_task_id,
                created_at=now, updated_at=now, enqueued_at=None if sfn else now, awaiting_start=sfn,
                queue_timeout_seconds=run.queue_timeout_seconds)


def held_back(task: Task, is_canary: bool, held: bool) -> Task:
    """The task as its run's canary places it: a canary task, or one held back until the gate
    (then it neither waits for a slot nor sits in a claim queue)."""
    if held:
        return task.model_copy(update={"canary": is_canary, "held": Hold.canary, "awaiting_start": False,
                                       "enqueued_at": None})
    return task.model_copy(update={"canary": is_canary})


def canary_counters_of_new_task(task: Task, *, fix: bool = False) -> dict[str, int]:
    if task.held:
        return {canary.HELD: 1}
    if task.canary:
        return {canary.OPEN: 1, canary.TOTAL: 1, **({canary.FIX_TASKS: 1} if fix else {})}
    return {}


def merged_outputs(current: dict[str, Any], added: dict[str, Any]) -> dict[str, Any]:
    """A task's outputs after a stage added some (later stages win on the same name), ≤ 16 KB."""
    merged = {**current, **added}
    if len(json.dumps(merged, separators=(",", ":"))) > MAX_OUTPUTS_BYTES:
        raise InvalidInputError(f"the task's outputs would exceed {MAX_OUTPUTS_BYTES // 1024} KB of JSON with these; "
                                "send fewer or smaller values", code="outputs_too_large")
    return merged


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


class TaskService:
    def __init__(self, repos: Repositories, roles: RoleService, outbox_: Outbox, *, sfn: bool, max_attempts: int = 3):
        self.repos = repos
        self.roles = roles
        self.outbox = outbox_
        self.sfn = sfn
        self.max_attempts = max_attempts
        self.claim_attempts = ClaimAttempts(repos)
        # The director's fast path (``DirectorService.watch``): told of each committed change before its
        # callbacks go out, so what it does to the task reaches the task's next job.
        self.watch: Optional[Callable[[Task, Transition, dict[str, Any]], None]] = None

    # ---- reads

    def get(self, principal: Principal, task_id: str, action: Action = Action.read) -> Task:
        task = self.repos.tasks.get(task_id) if is_valid_id(task_id, ids.TASK) else None
        if task is None:
            raise NotFoundError("task not found")
        authorize(principal, action, project_id=task.project_id, task_id=task.id, what="task")
        return task

    def get_under_claim(self, principal: Principal, task_id: str) -> Task:
        """The task, for writing evidence on it (handoffs, proofs, findings, usage, state).

        An agent writes evidence only under its live claim of the task: a job token's own claim, or
        for an agent key the claim it names with ``Baton-Claim``. Humans and admins may always
        attach evidence; it is recorded with their actor.
        """
        task = self.get(principal, task_id, Action.work)
        require_live_claim(principal, task, clock.now_iso())
        return task

    # ---- creation: a task enters its run's pipeline

    def create(self, item: dict[str, Any], *, title: str, description: str, priority: int,
                    source: TaskSource, parent_task_id: Optional[str], actor: str,
                    operations: tuple[dict[str, Any], ...] = (),
                    operations_for: Optional[Callable[[Task], Any]] = None,
                    run_set_fn: Optional[Callable[[dict[str, Any], str], dict[str, Any]]] = None,
                    check_run: Optional[Callable[[dict[str, Any]], None]] = None,
                    event_data: Optional[dict[str, Any]] = None, parent_is_canary: bool = False,
                    inputs: Optional[dict[str, Any]] = None) -> tuple[Task, Any]:
        """Write one task into its run (counters, event, and a fill request), in one transaction.
        ``operations_for(task)`` adds writes that name the new task (e.g. a finding's record)."""
        run = item_to_run(item)
        task = new_task(run, title=title, description=description, priority=priority, source=source,
                        parent_task_id=parent_task_id, now=clock.now_iso(), sfn=self.sfn)
        placed = canary.placement(item, task.id, parent_is_canary=parent_is_canary)
        task = held_back(task, *placed).model_copy(update={"inputs": inputs or {}})
        deltas = {**new_task_deltas(task.stage, task.status),
                  **canary_counters_of_new_task(task, fix=source == TaskSource.finding)}
        records = [run_effects.fill_request(run.id)] if self.sfn and not task.held else []

        def reopen(current: dict[str, Any]) -> dict[str, Any]:
            if check_run:
                check_run(current)
            else:
                require_open_run(current)
            require_task_room(current)
            if canary.placement(current, task.id, parent_is_canary=parent_is_canary) != placed:
                raise ConflictError("the run's canary moved on while the task was being added; add it again",
                                    code="stale_version")
            fields = run_set_fn(current, task.id) if run_set_fn else {}
            if current.get("status") != RunStatus.awaiting_approval.value or current.get("gate", "deploy") == "deploy":
                fields["status"] = RunStatus.running.value   # more work reopens a run waiting for its deploy
            return fields

        committed = self.repos.audit.commit(
            run_id=run.id, actor=actor, action="task.created", entity=f"task:{task.id}",
            data={"title": task.title, "source": source.value, "parent_task_id": parent_task_id,
                  "priority": task.priority, "stage": task.stage.value, "canary": task.canary,
                  "held": task.held.value if task.held else None, **(event_data or {})},
            operations=[self.repos.tasks.replace_op(task, None), *operations,
                        *(operations_for(task) if operations_for else ()), *self.outbox.operations(records)],
            counters=deltas, run_item=item, on_run=reopen)
        self.outbox.deliver(records)
        return task, committed

    # ---- the one way a task changes: domain decision + audited transaction + callbacks

    def commit_change(self, before: Task, after: Task, transition: Transition, actor: str, data: dict[str, Any],
                      run_item: Optional[dict[str, Any]] = None,
                      check_run: Optional[Callable[[dict[str, Any]], None]] = None,
                      extra_operations: tuple[dict[str, Any], ...] = (),
                      answer_job: bool = True, reopen: bool = False, next_attempt: int = 1) -> tuple[Task, Committed]:
        """Write ``before`` → ``after`` with its audit event and run consequences, in one transaction.
        ``answer_job=False`` keeps the stage job waiting (without Step Functions, a lease that
        expired re-queues the same job); ``next_attempt`` > 1 re-dispatches the same stage."""
        records: list[AnswerToken] = []
        if answer_job:
            after, records = run_effects.answer_stage_job(before, after, attempt=next_attempt)
        effect_of = run_effects.run_effect(before, after, transition, sfn=self.sfn,
                                         open_gate=gate_opener(self.repos), reopen=reopen)

        def on_run(current: dict[str, Any]):
            if check_run:
                check_run(current)
            return effect_of(current)

        committed = self.repos.audit.commit(
            run_id=before.run_id, actor=actor, action=transition.action, entity=f"task:{before.id}",
            data={"from_stage": transition.from_stage.value, "to_stage": transition.to_stage.value,
                  "from_status": transition.from_status.value, "to_status": transition.to_status.value,
                  "iteration": after.iteration, **data},
            operations=[self.repos.tasks.replace_op(after, before.version), *extra_operations,
                        *self.outbox.operations(records)],
            counters=run_effects.counter_deltas(transition), run_item=run_item, on_run=on_run)
        if self.watch is not None:
            self.watch(after, transition, committed.run_item)
        self.outbox.deliver(records + committed.effect.outbox)
        return after, committed

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
        tried: list[str] = []
        for project_id, run_id in queues:
            known_run: Optional[dict[str, Any]] = None   # the run as read to authorize: the claim's commit reuses it
            if run_id is not None:
                if not is_valid_id(run_id, ids.RUN):
                    raise InvalidInputError("run_id is not a run id", code="invalid_id")
                # A run's project never changes: the run this process remembers authorizes as well
                # as a read (its commit checks the rest); a run read here serves the commit too.
                remembered = self.repos.audit.hints.get(run_id)
                run_item = remembered or self.repos.runs.get_item(run_id)
                if run_item is None:
                    raise NotFoundError("run not found")
                authorize(principal, Action.work, project_id=run_item["project_id"], what="run")
                known_run = None if remembered else run_item
            tried.append(str(project_id) if run_id is None else str(run_item["project_id"]))
            for _round in range(CLAIM_ROUNDS):
                now = clock.now_iso()
                if run_id is not None:
                    candidates = self.repos.tasks.queued_in_run(run_id, request.stage.value, CANDIDATES_PER_QUERY)
                else:
                    candidates = self.repos.tasks.queued(str(project_id), request.stage.value,
                                                             CANDIDATES_PER_QUERY)
                    if len(candidates) < CANDIDATES_PER_QUERY and not self.sfn:
                        candidates += self.repos.tasks.expired_leases(str(project_id), request.stage.value, now, 5)
                if not candidates:
                    break
                for candidate in spread(candidates):
                    try:
                        return self._claim_one(principal, candidate, request, run_item=known_run)
                    except ConflictError:
                        known_run = None   # it may be stale now: the next commit reads the run again
                        continue  # lost the race, or its run is not running: try the next one
        for project_id in dict.fromkeys(tried):   # an attempt on an empty queue, for the idle-queue rule
            self.claim_attempts.record(project_id, request.stage.value)
        return None

    def _reclaim(self, task: Task, claim_id: str, request: ClaimRequest) -> tuple[Task, Claim]:
        """A container job is claimed for its runner when it is launched (the heartbeat clock starts
        there); the runner's own claim call gets that claim back, with the lease it asks for."""
        def extend() -> tuple[Task, Claim]:
            current = self.repos.tasks.get(task.id) or task
            after = pipeline.heartbeat(current, claim_id=claim_id, now=clock.now_iso(),
                                       lease_seconds=request.lease_seconds)
            self.repos.tasks.replace(after, current.version)
            return after, Claim(claim_id=claim_id, expires_at=after.lease_expires_at or "")

        return on_fresh_read(extend)

    def _claim_one(self, principal: Principal, task: Task, request: ClaimRequest,
                   run_item: Optional[dict[str, Any]] = None) -> tuple[Task, Claim]:
        now = clock.now_iso()
        after, transition = pipeline.claim(task, stage=request.stage, agent_id=request.agent_id,
                                           claim_id=f"{ids.CLAIM}_{secrets.token_hex(12)}", now=now,
                                           lease_seconds=request.lease_seconds)
        after = after.model_copy(update={"claimed_with_key": principal.key_id})

        def running(current: dict[str, Any]) -> None:
            if RunStatus(current["status"]) != RunStatus.running:
                raise ConflictError(f"run {task.run_id} is {current['status']}; its tasks cannot be claimed",
                                    code="run_not_running")

        after, _ = self.commit_change(task, after, transition, principal.actor,
                                      {"agent_id": request.agent_id, "lease_expires_at": after.lease_expires_at},
                                      run_item=run_item, check_run=running)
        return after, Claim(claim_id=after.claim_id or "", expires_at=after.lease_expires_at or "")

    # ---- heartbeat, advance, set-stage

    def heartbeat(self, principal: Principal, task_id: str, request: HeartbeatRequest) -> str:
        """Extend the lease; 409 unless ``claim_id`` holds it. The lease is the stage job's
        liveness (the sweeper re-dispatches a job whose lease expired), so nothing else is told.
        Not an audit event: nothing moved.

        One conditional write and no read (the condition says: this claim, a live lease, a project
        the caller sees); only when it fails is the task read, to answer why (404, 409)."""
        if not is_valid_id(task_id, ids.TASK):
            raise NotFoundError("task not found")
        authorize(principal, Action.work, task_id=task_id, what="task")
        projects = None if principal.is_admin else principal.project_ids

        def extend() -> str:
            now = clock.now_iso()
            expires_at = clock.plus_seconds(now, request.lease_seconds)
            if self.repos.tasks.extend_lease(task_id, claim_id=request.claim_id, now=now, expires_at=expires_at,
                                             project_ids=projects):
                return expires_at
            task = self.get(principal, task_id, Action.work)   # 404 when not visible
            pipeline.heartbeat(task, claim_id=request.claim_id, now=clock.now_iso(),
                               lease_seconds=request.lease_seconds)   # 409 when the lease is not held
            raise ConflictError("the task changed during the heartbeat; retry", code="stale_version")

        return on_fresh_read(extend)

    def advance(self, principal: Principal, task_id: str, request: AdvanceRequest,
                extra_operations: tuple[dict[str, Any], ...] = (),
                check: Optional[Callable[[Task, dict[str, Any]], None]] = None) -> Task:
        """Finish the claimant's stage: pass → next stage, fail → loop back (or failed). Retried on
        a fresh read when only the version moved (the claimant's own heartbeat); the lease is
        checked again each time, so a stale claim still changes nothing."""
        def once() -> Task:
            task = self.get(principal, task_id, Action.work)
            pipeline.check_lease(task, request.claim_id, clock.now_iso())
            run_item = self.repos.runs.get_item(task.run_id) or {}
            if check:
                check(task, run_item)
            after, transition = pipeline.advance(
                task, claim_id=request.claim_id, result=request.result, stages=task_stages(task, run_item),
                max_iterations=int(run_item["max_iterations"]), now=clock.now_iso())
            if request.outputs:
                after = after.model_copy(update={"outputs": merged_outputs(task.outputs, request.outputs)})
            failure: dict[str, Any] = {}
            if request.result == AdvanceResult.fail:   # its fingerprint, for the director's same-failure rule
                reported = request.failure
                after, failure = failed_stage(task, after, failing_tests=reported.failing_tests if reported else [],
                                              error=(reported.error if reported else "") or request.notes,
                                              now=clock.now_iso())
            after, _ = self.commit_change(task, after, transition, principal.actor,
                                          {"result": request.result.value, "notes": request.notes[:2000],
                                           "agent_id": task.claimed_by, **failure,
                                           **({"outputs": request.outputs} if request.outputs else {})},
                                          run_item=run_item, extra_operations=extra_operations)
            return after

        return on_fresh_read(once)

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
                losses = after_lease_loss(task)   # lease churn, for the director
                expiries = losses.lease_losses.count if losses.lease_losses else 1
                after, _ = self.commit_change(task, after.model_copy(update={"supervision": losses.stored()}), transition,
                                              actor,
                                              {**data, "attempt": task.attempt, "lease_expiries": expiries},
                                              next_attempt=attempt)
                return after
            plain = pipeline.expire_lease(task, now=now)
            if plain is None:
                return None
            losses = after_lease_loss(task)
            after, _ = self.commit_change(task, plain[0].model_copy(update={"supervision": losses.stored()}), plain[1],
                                          actor,
                                          {**data, "lease_expiries": losses.lease_losses.count if losses.lease_losses
                                           else 1}, answer_job=False)
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
        details = {"waiting_since": task.enqueued_at, "waited_seconds": waited,
                   "queue_timeout_seconds": task.queue_timeout_seconds, "stage": task.stage.value, "job_id": task.job_id}
        attention = AttentionItem(
            id=new_id(ids.ATTENTION), kind=AttentionKind.stuck, project_id=task.project_id, run_id=task.run_id,
            task_id=task.id, created_at=now, details=details,
            summary=f"task {task.title!r} has waited {waited // 60} min at {task.stage.value} for an agent to claim it")
        try:
            self.commit_change(task, after, transition, actor, details, answer_job=False,
                               extra_operations=(self.repos.attention.open_op(attention),))
        except ConflictError:
            return False
        return True

    def set_stage(self, principal: Principal, task_id: str, request: SetStageRequest) -> Task:
        task = self.get(principal, task_id, Action.set_stage)
        run_item = self.repos.runs.get_item(task.run_id) or {}
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
        resumed = pause_resolution_ops(self.repos, task, by=principal.actor, comment=f"stage set: {request.reason}")
        after, _ = self.commit_change(task, after, transition, principal.actor,
                                      {"reason": request.reason, **({"resumed": True} if resumed else {})},
                                      run_item=run_item, reopen=True, extra_operations=resumed)
        return after
