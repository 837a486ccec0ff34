"""Facts recorded where they arise, and what acting leaves behind, as pure functions of a task's
``Supervision`` (or a run's ``RunWatch``):

* a failed advance appends the iteration's failure fingerprint (``after_failure``), in the advance's
  own transaction;
* a lease expiry counts a lease loss of the stage job (``after_lease_loss``), in the expiry's;
* an action records its key, and a nudge its note, a pause its attention item, a reassignment its
  target (``after_action``), in the action's;
* the run's audit log, read in order, gives the stage jobs in flight and the durations of the
  finished ones (``fold_events``).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from .. import clock
from ..entities import Task
from .fingerprints import Failure, failure_of
from .actions import DirectorAction
from .model import (MAX_DONE_KEPT, MAX_FAILURES_KEPT, MAX_NOTES_KEPT, ActionKind, DirectorNote, FailureRecord,
                    LeaseLosses, Pause, Supervision, supervision_of)
from .watches import MAX_DURATIONS_KEPT, RunWatch, StartedJob

# Audit events that start a stage job, end one with a verdict (a duration sample), or end one without.
JOB_STARTS = ("task.claimed",)
CONTAINER_STARTS = ("job.dispatched", "job.redispatched")
JOB_VERDICTS = ("task.passed", "task.looped_back", "task.failed")
JOB_ENDS = ("task.lease_expired", "job.lease_expired", "task.attempts_exhausted", "task.stage_set", "task.cancelled")
# Events after which the task rules are worth evaluating again (the director's fallback path).
TASK_FACT_EVENTS = ("task.looped_back", "task.failed", "task.lease_expired", "job.lease_expired",
                    "task.attempts_exhausted")


def after_failure(task: Task, *, failing_tests: Sequence[str] = (), error: str = "",
                  finding_keys: Sequence[str] = (), now: str) -> tuple[Supervision, Optional[Failure]]:
    """The task's supervision once its current stage and iteration failed, and the failure's identity.
    Finding keys count only when they were reported at this stage and iteration."""
    failure = failure_of(failing_tests=failing_tests, finding_keys=finding_keys, error=error)
    record = FailureRecord(stage=task.stage.value, iteration=task.iteration, at=now,
                           fingerprint=failure.fingerprint if failure else None,
                           source=failure.source if failure else None, sample=failure.sample if failure else "")
    current = supervision_of(task)
    kept = [*current.failures, record][-MAX_FAILURES_KEPT:]
    return current.model_copy(update={"failures": kept}), failure


def failed_stage(task: Task, after: Task, *, failing_tests: Sequence[str], error: str,
                 now: str) -> tuple[Task, dict[str, Any]]:
    """``after`` (the task as its failed advance leaves it) with the failure recorded in its
    supervision, and what the advance's event says about the failure."""
    supervision, failure = after_failure(task, failing_tests=failing_tests, error=error,
                                         finding_keys=findings_of_iteration(task), now=now)
    data = {"failure": {"fingerprint": failure.fingerprint, "source": failure.source, "sample": failure.sample}} \
        if failure else {}
    return after.model_copy(update={"supervision": supervision.stored(), "failing_findings": None}), data


def executor_for(task: Task, role_executor: str) -> str:
    """The executor of the task's next stage job: the director's reassignment of that job, else the role's."""
    moved = supervision_of(task).reassigned
    if moved is not None and moved.executor and moved.applies_to(task.stage.value, task.iteration):
        return moved.executor
    return role_executor


def findings_of_iteration(task: Task) -> list[str]:
    """The failing findings' keys reported at the task's current stage and iteration."""
    recorded = task.failing_findings or {}
    if recorded.get("stage") != task.stage.value or recorded.get("iteration") != task.iteration:
        return []
    return [str(k) for k in recorded.get("keys") or []]


def after_lease_loss(task: Task) -> Supervision:
    """The task's supervision once its stage job's lease expired (counted per stage and iteration)."""
    supervision = supervision_of(task)
    current = supervision.lease_losses
    count = current.count + 1 if current and (current.stage, current.iteration) == (task.stage.value, task.iteration) \
        else 1
    return supervision.model_copy(update={
        "lease_losses": LeaseLosses(stage=task.stage.value, iteration=task.iteration, count=count)})


def after_action(supervision: Supervision, action: DirectorAction, now: str, *, iteration: int,
                 pause: Optional[Pause] = None) -> Supervision:
    """The supervision once ``action`` was taken: its key done (the oldest keys go past a bound), a
    nudge's note kept for the next job, an escalation counted, a pause or a reassignment recorded."""
    done = {**supervision.done, action.key: now}
    if len(done) > MAX_DONE_KEPT:
        done = dict(sorted(done.items(), key=lambda kv: kv[1])[-MAX_DONE_KEPT:])
    update: dict[str, Any] = {"done": done}
    if action.kind == ActionKind.nudge:
        note = DirectorNote(at=now, rule=action.rule, stage=action.stage or "", iteration=iteration,
                            text=action.message)
        update["notes"] = [*supervision.notes, note][-MAX_NOTES_KEPT:]
    if action.kind in (ActionKind.escalate, ActionKind.pause_task):
        update.update(escalations=supervision.escalations + 1, last_escalated_at=now)
    if action.kind == ActionKind.pause_task:
        update["paused"] = pause
    if action.kind == ActionKind.reassign:
        update["reassigned"] = action.reassign_to
    return supervision.model_copy(update=update)


def resumed(supervision: Supervision) -> Supervision:
    return supervision.model_copy(update={"paused": None})


def _task_of(event: dict[str, Any]) -> Optional[str]:
    entity = str(event.get("entity") or "")
    return entity.split(":", 1)[1] if entity.startswith("task:") else None


def _seconds_between(start: str, end: str) -> Optional[float]:
    try:
        return max(0.0, (clock.parse_iso(end) - clock.parse_iso(start)).total_seconds())
    except ValueError:
        return None


def fold_events(watch: RunWatch, events: Iterable[dict[str, Any]]) -> tuple[RunWatch, set[str], dict[str, str]]:
    """The run's watch after reading ``events`` (in sequence order, after ``watch.seen_seq``): stage
    jobs started and ended, the durations of those that ended with a verdict; the tasks whose facts
    changed (their task rules are evaluated again); and the latest claim by an agent at each stage
    (an attempt on that stage's queue, for the idle-queue rule)."""
    started = dict(watch.started)
    durations = {stage: list(values) for stage, values in watch.durations.items()}
    touched: set[str] = set()
    claims: dict[str, str] = {}
    seen = watch.seen_seq
    for event in events:
        seen = max(seen, int(event.get("seq") or 0))
        task_id, action, data = _task_of(event), str(event.get("action") or ""), event.get("data") or {}
        if task_id is None:
            continue
        if action in TASK_FACT_EVENTS:
            touched.add(task_id)
        if action in JOB_STARTS and data.get("to_stage"):
            started[task_id] = StartedJob(stage=str(data["to_stage"]), iteration=int(data.get("iteration") or 0),
                                          at=str(event["at"]))
            claims[str(data["to_stage"])] = max(claims.get(str(data["to_stage"]), ""), str(event["at"]))
        elif action in CONTAINER_STARTS and data.get("lease_expires_at") and data.get("stage"):
            # a container job is claimed for its runner when it is dispatched
            started[task_id] = StartedJob(stage=str(data["stage"]), iteration=int(data.get("iteration") or 0),
                                          at=str(event["at"]))
        elif action in JOB_VERDICTS or action in JOB_ENDS:
            job = started.pop(task_id, None)
            if job is not None and action in JOB_VERDICTS and job.stage == data.get("from_stage"):
                seconds = _seconds_between(job.at, str(event["at"]))
                if seconds is not None:
                    durations[job.stage] = [*durations.get(job.stage, []), round(seconds, 3)][-MAX_DURATIONS_KEPT:]
    return watch.model_copy(update={"seen_seq": seen, "started": started, "durations": durations}), touched, claims


__all__ = ["CONTAINER_STARTS", "JOB_ENDS", "JOB_STARTS", "JOB_VERDICTS", "TASK_FACT_EVENTS", "after_action",
           "after_failure", "after_lease_loss", "executor_for", "failed_stage", "findings_of_iteration", "fold_events",
           "resumed"]
