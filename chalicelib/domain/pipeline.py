"""The stage machine: how a task moves through its run's stages.

Every function is pure: it takes the task as read and returns the task as it must be written,
with ``version + 1``. The store writes that result conditioned on the version it read, so a
decision made here is never applied over a state it did not see.

Rules
-----
* A task starts ``queued`` at its run's first stage, iteration 1.
* Claim: only a ``queued`` task, or an ``in_progress`` one whose lease has expired, at the stage
  the claimant asks for. The claimant receives a ``claim_id``; later writes must present it
  while the lease holds.
* Advance ``pass``: the next stage of the run, or ``complete`` (status ``done``) after the last.
* Advance ``fail``: back to the run's first stage (``dev``) with ``iteration + 1``; when that would
  exceed ``max_iterations`` the task ends ``failed`` where it is.
* Set-stage (human/admin, with a reason): any stage of the run, or ``complete``; the task is
  re-queued (or done) at the same iteration and any claim is dropped; a task the director paused
  is resumed.
* A held task (by its canary gate, or paused by the director) cannot be claimed; a stage job
  the director reserved for some agents can be claimed by them only.
* Cancel: any non-terminal task becomes ``cancelled``.
* A claimed job whose lease expires (its agent went silent) is dispatched again, up to the
  attempts allowed, then the task fails. An unclaimed job never expires: it waits for an agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from .clock import plus_seconds
from .errors import ConflictError, InvalidInputError
from .entities import Task
from .enums import AdvanceResult, Hold, Stage, TaskStatus


@dataclass(frozen=True)
class Transition:
    """What changed, for counters and the audit log."""

    action: str
    from_stage: Stage
    to_stage: Stage
    from_status: TaskStatus
    to_status: TaskStatus

    @property
    def moves_counters(self) -> bool:
        return self.from_stage != self.to_stage or self.from_status != self.to_status


def first_stage(stages: Sequence[Stage]) -> Stage:
    return stages[0]


def next_stage(stages: Sequence[Stage], current: Stage) -> Stage:
    """The stage after ``current`` in the run's order, or ``complete`` after the last."""
    if current not in stages:
        return Stage.complete
    index = list(stages).index(current)
    return stages[index + 1] if index + 1 < len(stages) else Stage.complete


def lease_is_live(task: Task, now: str) -> bool:
    return task.lease_expires_at is not None and task.lease_expires_at > now


def is_claimable(task: Task, stage: Stage, now: str) -> bool:
    if task.stage != stage or task.held is not None:   # held: by its canary gate, or paused by the director
        return False
    if task.status == TaskStatus.queued:
        return True
    return task.status == TaskStatus.in_progress and not lease_is_live(task, now)


def _changed(task: Task, now: str, **fields) -> Task:
    return task.model_copy(update={**fields, "version": task.version + 1, "updated_at": now})


def _transition(action: str, before: Task, after: Task) -> Transition:
    return Transition(action, before.stage, after.stage, before.status, after.status)


def claim(task: Task, *, stage: Stage, agent_id: str, claim_id: str, now: str,
          lease_seconds: int) -> tuple[Task, Transition]:
    if not is_claimable(task, stage, now):
        raise ConflictError(f"task {task.id} is not queued at stage {stage.value}", code="not_claimable")
    reserved = task.supervision.get("reassigned") or {}
    agents = list(reserved.get("agent_ids") or [])
    if agents and (reserved.get("stage"), reserved.get("iteration")) == (task.stage.value, task.iteration) \
            and agent_id not in agents:
        raise ConflictError(f"task {task.id}'s {task.stage.value} job is reserved for agents "
                            f"{', '.join(agents)} (the director reassigned it)", code="reserved")
    after = _changed(task, now, status=TaskStatus.in_progress, claimed_by=agent_id, claim_id=claim_id,
                     lease_expires_at=plus_seconds(now, lease_seconds), enqueued_at=None)
    return after, _transition("task.claimed", task, after)


def check_lease(task: Task, claim_id: str, now: str) -> None:
    """Raise ConflictError unless ``claim_id`` holds a live lease on ``task``."""
    if task.status != TaskStatus.in_progress or task.claim_id != claim_id:
        raise ConflictError(
            f"claim {claim_id} does not hold task {task.id}; claim the task again",
            code="lease_not_held")
    if not lease_is_live(task, now):
        raise ConflictError(
            f"the lease of claim {claim_id} on task {task.id} expired at {task.lease_expires_at}; "
            "claim the task again", code="lease_expired")


def heartbeat(task: Task, *, claim_id: str, now: str, lease_seconds: int) -> Task:
    check_lease(task, claim_id, now)
    return _changed(task, now, lease_expires_at=plus_seconds(now, lease_seconds))


def _released(task: Task, now: str, **fields) -> Task:
    enqueued = now if fields.get("status") == TaskStatus.queued else None
    return _changed(task, now, claimed_by=None, claim_id=None, lease_expires_at=None, claimed_with_key=None,
                    enqueued_at=enqueued, **fields)


def advance(task: Task, *, claim_id: str, result: AdvanceResult, stages: Sequence[Stage],
            max_iterations: int, now: str) -> tuple[Task, Transition]:
    check_lease(task, claim_id, now)
    if result == AdvanceResult.pass_:
        target = next_stage(stages, task.stage)
        status = TaskStatus.done if target == Stage.complete else TaskStatus.queued
        after = _released(task, now, stage=target, status=status)
        return after, _transition("task.passed", task, after)
    if task.iteration + 1 > max_iterations:
        after = _released(task, now, status=TaskStatus.failed)
        return after, _transition("task.failed", task, after)
    after = _released(task, now, stage=first_stage(stages), status=TaskStatus.queued,
                      iteration=task.iteration + 1)
    return after, _transition("task.looped_back", task, after)


def set_stage(task: Task, *, stage: Stage, stages: Sequence[Stage], now: str) -> tuple[Task, Transition]:
    allowed = list(stages) + [Stage.complete]
    if stage not in allowed:
        names = ", ".join(s.value for s in allowed)
        raise InvalidInputError(f"stage {stage.value!r} is not part of this run; use one of {names}",
                                code="invalid_stage")
    if task.status == TaskStatus.cancelled:
        raise ConflictError(f"task {task.id} is cancelled; its run was killed", code="task_cancelled")
    status = TaskStatus.done if stage == Stage.complete else TaskStatus.queued
    resumed: dict = {}
    if task.held == Hold.director:   # a person moving a paused task resumes it
        resumed = {"held": None, "supervision": {k: v for k, v in task.supervision.items() if k != "paused"}}
    after = _released(task, now, stage=stage, status=status, **resumed)
    return after, _transition("task.stage_set", task, after)


def cancel(task: Task, *, now: str) -> Optional[tuple[Task, Transition]]:
    """The cancelled task, or None when it already ended (nothing to change)."""
    if task.is_terminal:
        return None
    after = _released(task, now, status=TaskStatus.cancelled)
    return after, _transition("task.cancelled", task, after)


def give_up_silent_job(task: Task, *, now: str, max_attempts: int) -> Optional[tuple[Task, Transition, int]]:
    """A claimed stage job whose lease expired (its agent went silent, or a launched container never
    started): the job is dispatched again as attempt + 1, or, with no attempt left, the task fails.
    Returns the task as it must be written, its transition and the attempt of the next job."""
    if task.status != TaskStatus.in_progress or lease_is_live(task, now):
        return None
    if task.attempt >= max_attempts:
        after = _released(task, now, status=TaskStatus.failed)
        return after, _transition("task.attempts_exhausted", task, after), task.attempt
    after = _released(task, now, status=TaskStatus.queued)
    return after, _transition("job.lease_expired", task, after), task.attempt + 1


def expire_lease(task: Task, *, now: str) -> Optional[tuple[Task, Transition]]:
    """Put an in-progress task whose lease expired back in the queue (the sweeper's job)."""
    if task.status != TaskStatus.in_progress or lease_is_live(task, now):
        return None
    after = _released(task, now, status=TaskStatus.queued)
    return after, _transition("task.lease_expired", task, after)
