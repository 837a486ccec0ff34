"""The director's detectors: one pure function per rule, from plain facts, its thresholds (the
director settings) and the time, to the actions it proposes, each with its rule and evidence.

A detector proposes an action only when its rule holds and the action's key was not acted on
before (``Supervision.done`` for a task, the queue's and the run's own records otherwise), so the
same facts never produce the same action twice. ``apply_policy`` then holds back escalations of a
task escalated within the cooldown and turns escalations into pauses when the settings say so.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Optional, Sequence

from .. import clock
from ..entities import DirectorSettings, Task
from ..enums import TERMINAL_TASK_STATUSES, TaskStatus
from .actions import DirectorAction
from .model import ActionKind, FailureRecord, Reassignment, Rule, Supervision, supervision_of


@dataclass(frozen=True)
class TaskFacts:
    """A task as the task rules see it; ``fallback`` is where its role lets the stage's next job go
    (None: the role allows no reassignment)."""

    task_id: str
    run_id: str
    project_id: str
    stage: str
    status: str
    iteration: int
    max_iterations: int
    supervision: Supervision
    fallback: Optional[Reassignment] = None

    @classmethod
    def of(cls, task: Task, max_iterations: int, fallback: Optional[Reassignment] = None) -> "TaskFacts":
        return cls(task_id=task.id, run_id=task.run_id, project_id=task.project_id, stage=task.stage.value,
                   status=task.status.value, iteration=task.iteration, max_iterations=max_iterations,
                   supervision=supervision_of(task), fallback=fallback)

    @property
    def open(self) -> bool:
        return TaskStatus(self.status) not in TERMINAL_TASK_STATUSES

    def done(self, key: str) -> bool:
        return key in self.supervision.done

    def action(self, kind: ActionKind, rule: Rule, key: str, message: str, evidence: dict,
               stage: Optional[str] = None, reassign_to: Optional[Reassignment] = None) -> DirectorAction:
        return DirectorAction(kind=kind, rule=rule, key=key, message=message, evidence=evidence,
                              project_id=self.project_id, run_id=self.run_id, task_id=self.task_id,
                              stage=stage or self.stage, reassign_to=reassign_to)


def failure_streak(failures: Sequence[FailureRecord]) -> list[FailureRecord]:
    """The latest failures with one fingerprint, in consecutive iterations, oldest first (empty when
    the latest failure has no fingerprint)."""
    if not failures or failures[-1].fingerprint is None:
        return []
    streak = [failures[-1]]
    for earlier in reversed(failures[:-1]):
        if earlier.fingerprint != streak[0].fingerprint or streak[0].iteration - earlier.iteration > 1:
            break
        streak.insert(0, earlier)
    return streak


def same_failure(task: TaskFacts, settings: DirectorSettings, now: str) -> list[DirectorAction]:
    """The same failure fingerprint in N consecutive iterations: nudge at ``same_failure_nudge_at``,
    escalate at ``same_failure_escalate_at``, pause at ``same_failure_pause_at`` (0: never)."""
    streak = failure_streak(task.supervision.failures)
    if not streak or TaskStatus(task.status) in (TaskStatus.done, TaskStatus.cancelled):
        return []
    first, last, count = streak[0], streak[-1], len(streak)
    base = f"{Rule.same_failure.value}:{last.fingerprint}:{first.iteration}"
    evidence = {"fingerprint": last.fingerprint, "source": last.source, "sample": last.sample, "times": count,
                "iterations": [f.iteration for f in streak], "stages": sorted({f.stage for f in streak})}
    where = f"iteration{'s' if count > 1 else ''} {first.iteration}–{last.iteration}, at {last.stage}"
    what = {"tests": "failing tests", "findings": "failing findings", "error": "error"}.get(last.source or "",
                                                                                          "failure")
    actions: list[DirectorAction] = []
    if settings.same_failure_pause_at and count >= settings.same_failure_pause_at and task.open \
            and not task.done(f"{base}:pause"):
        return [task.action(ActionKind.pause_task, Rule.same_failure, f"{base}:pause",
                            f"The same failure came back {count} times in a row ({where}); the task is paused until "
                            f"a person resumes it. {what}: {last.sample}", evidence, stage=last.stage)]
    if settings.same_failure_escalate_at and count >= settings.same_failure_escalate_at \
            and not task.done(f"{base}:escalate"):
        actions.append(task.action(ActionKind.escalate, Rule.same_failure, f"{base}:escalate",
                                   f"The same failure came back {count} times in a row ({where}); the agents do not "
                                   f"get past it. {what}: {last.sample}", evidence, stage=last.stage))
    if settings.same_failure_nudge_at and count >= settings.same_failure_nudge_at and task.open \
            and not task.done(f"{base}:nudge"):
        actions.append(task.action(ActionKind.nudge, Rule.same_failure, f"{base}:nudge",
                                   f"The same failure came back {count} times in a row ({where}). The last approach "
                                   f"did not fix it: find its cause before anything else. {what}: {last.sample}",
                                   evidence))
    return actions


def near_max_iterations(task: TaskFacts, settings: DirectorSettings, now: str) -> list[DirectorAction]:
    """A task one loop-back from ``max_iterations``: its last iteration is running; a nudge says so."""
    if not settings.near_max_iterations_nudge or not task.open or task.max_iterations < 2 \
            or task.iteration < task.max_iterations:
        return []
    key = f"{Rule.near_max_iterations.value}:{task.iteration}"
    if task.done(key):
        return []
    last = task.supervision.failures[-1] if task.supervision.failures else None
    evidence = {"iteration": task.iteration, "max_iterations": task.max_iterations,
                "last_failure": last.sample if last else None, "last_failed_stage": last.stage if last else None}
    return [task.action(ActionKind.nudge, Rule.near_max_iterations, key,
                        f"This is the task's last iteration ({task.iteration} of {task.max_iterations}): one more "
                        "failed stage and the task fails. Fix what failed last time"
                        + (f" ({last.stage}: {last.sample})" if last and last.sample else "")
                        + " and check it yourself before handing over.", evidence)]


def lease_churn(task: TaskFacts, settings: DirectorSettings, now: str) -> list[DirectorAction]:
    """The stage job lost its agent (lease expired, job re-dispatched) K times: escalate, and move the
    next job to the role's fallback when the role allows one."""
    losses = task.supervision.lease_losses
    threshold = settings.lease_churn_escalate_at
    if not threshold or losses is None or losses.count < threshold \
            or (losses.stage, losses.iteration) != (task.stage, task.iteration) \
            or TaskStatus(task.status) in (TaskStatus.done, TaskStatus.cancelled):
        return []
    base = f"{Rule.lease_churn.value}:{losses.stage}:{losses.iteration}"
    evidence = {"stage": losses.stage, "iteration": losses.iteration, "lease_expiries": losses.count,
                "threshold": threshold}
    actions: list[DirectorAction] = []
    target = task.fallback
    if settings.reassign_on_lease_churn and target is not None and task.open and not task.done(f"{base}:reassign"):
        moved = target.model_copy(update={"stage": task.stage, "iteration": task.iteration,
                                          "rule": Rule.lease_churn, "at": now})
        to = " and ".join(filter(None, [f"the {moved.executor} executor" if moved.executor else "",
                                        f"agents {', '.join(moved.agent_ids)}" if moved.agent_ids else ""]))
        actions.append(task.action(ActionKind.reassign, Rule.lease_churn, f"{base}:reassign",
                                   f"The {losses.stage} job lost its agent {losses.count} times; its next job goes to "
                                   f"{to}.", {**evidence, "to": {"executor": moved.executor,
                                                                   "agent_ids": moved.agent_ids}},
                                   reassign_to=moved))
    if not task.done(f"{base}:escalate"):
        actions.append(task.action(ActionKind.escalate, Rule.lease_churn, f"{base}:escalate",
                                   f"The {losses.stage} job of this task lost its agent {losses.count} times (its "
                                   "lease expired and it was dispatched again): the agent crashes or hangs"
                                   + (", and its next job was reassigned." if actions else "."), evidence))
    return actions


@dataclass(frozen=True)
class QueueFacts:
    """A claim queue (a project's stage): its oldest queued task, the last claim attempt seen (an
    empty claim recorded, or an agent working at that stage), and when it was last reported idle."""

    project_id: str
    stage: str
    external: bool
    queued: int
    oldest_task_id: str
    oldest_run_id: str
    oldest_enqueued_at: str
    last_attempt_at: Optional[str] = None
    idle_reported_at: Optional[str] = None


def idle_queue(queue: QueueFacts, settings: DirectorSettings, now: str) -> list[DirectorAction]:
    """Queued tasks of an external role that no agent tried to claim for ``idle_queue_minutes``:
    reported once per idle spell (again only after an attempt, or newer work, came after the report)."""
    minutes = settings.idle_queue_minutes
    if not minutes or not queue.external or queue.queued < 1:
        return []
    since = clock.plus_seconds(now, -60 * minutes)
    if queue.oldest_enqueued_at > since or (queue.last_attempt_at is not None and queue.last_attempt_at > since):
        return []
    if queue.idle_reported_at is not None and \
            queue.idle_reported_at >= max(queue.last_attempt_at or "", queue.oldest_enqueued_at):
        return []
    waited = int((clock.parse_iso(now) - clock.parse_iso(queue.oldest_enqueued_at)).total_seconds() // 60)
    evidence = {"project_id": queue.project_id, "stage": queue.stage, "queued": queue.queued,
                "oldest_task_id": queue.oldest_task_id, "oldest_enqueued_at": queue.oldest_enqueued_at,
                "waited_minutes": waited, "last_claim_attempt_at": queue.last_attempt_at,
                "threshold_minutes": minutes}
    return [DirectorAction(
        kind=ActionKind.escalate, rule=Rule.idle_queue,
        key=f"{Rule.idle_queue.value}:{queue.project_id}:{queue.stage}:{queue.oldest_enqueued_at}",
        message=f"{queue.queued}{'+' if queue.queued >= 25 else ''} task(s) wait at {queue.stage} in project "
                f"{queue.project_id}, the oldest for {waited} min, and no agent has tried to claim from this queue "
                + (f"since {queue.last_attempt_at}" if queue.last_attempt_at else "at all") + ": is an agent running?",
        evidence=evidence, project_id=queue.project_id, run_id=queue.oldest_run_id, stage=queue.stage)]


def median_or_none(durations: Sequence[float], at_least: int) -> Optional[float]:
    return statistics.median(durations) if len(durations) >= max(1, at_least) else None


def slow_stage(task: TaskFacts, started_at: str, peers: Sequence[float], settings: DirectorSettings,
               now: str) -> list[DirectorAction]:
    """A stage job running longer than ``slow_stage_factor`` × the median of its peers (the same
    stage's finished jobs in the run, at least ``slow_stage_min_peers`` of them) and at least
    ``slow_stage_min_seconds``: a nudge; past ``slow_stage_escalate_factor`` × the median, an escalation."""
    median = median_or_none(peers, settings.slow_stage_min_peers)
    if median is None or not settings.slow_stage_factor or TaskStatus(task.status) != TaskStatus.in_progress:
        return []
    elapsed = (clock.parse_iso(now) - clock.parse_iso(started_at)).total_seconds()
    if elapsed < settings.slow_stage_min_seconds:
        return []
    base = f"{Rule.slow_stage.value}:{task.stage}:{task.iteration}:{started_at}"
    evidence = {"stage": task.stage, "iteration": task.iteration, "started_at": started_at,
                "elapsed_seconds": round(elapsed), "peers_median_seconds": round(median, 1), "peers": len(peers),
                "ratio": round(elapsed / median, 1) if median else None}
    actions: list[DirectorAction] = []
    late = f"has run {round(elapsed / 60)} min at {task.stage}, {evidence['ratio']}× the median of its " \
           f"{len(peers)} peers in the run ({round(median)} s)"
    if settings.slow_stage_escalate_factor and elapsed > settings.slow_stage_escalate_factor * median \
            and not task.done(f"{base}:escalate"):
        actions.append(task.action(ActionKind.escalate, Rule.slow_stage, f"{base}:escalate",
                                   f"This task's stage job {late}: it may be stuck.", evidence))
    if elapsed > settings.slow_stage_factor * median and not task.done(f"{base}:nudge"):
        actions.append(task.action(ActionKind.nudge, Rule.slow_stage, f"{base}:nudge",
                                   f"The last {task.stage} job {late}. Keep the next attempt small and hand over "
                                   "early if it does not converge.", evidence))
    return actions


@dataclass(frozen=True)
class BudgetFacts:
    project_id: str
    run_id: str
    used_fraction: float
    max_cost_usd: Optional[float]
    max_tokens: Optional[int]
    escalated_for: Optional[str] = None

    @property
    def signature(self) -> str:
        return f"cost={self.max_cost_usd}|tokens={self.max_tokens}"


def budget_near_end(run: BudgetFacts, settings: DirectorSettings, now: str) -> list[DirectorAction]:
    """A run that used ``budget_escalate_fraction`` of its budget (and not all of it: the budget gate
    asks a person then): escalated once per budget (a raised budget may be escalated again)."""
    threshold = settings.budget_escalate_fraction
    if not threshold or (run.max_cost_usd is None and run.max_tokens is None) \
            or not threshold <= run.used_fraction < 1.0 or run.escalated_for == run.signature:
        return []
    evidence = {"used_fraction": round(run.used_fraction, 4), "max_cost_usd": run.max_cost_usd,
                "max_tokens": run.max_tokens, "threshold": threshold}
    return [DirectorAction(kind=ActionKind.escalate, rule=Rule.budget_near_end,
                           key=f"{Rule.budget_near_end.value}:{run.signature}",
                           message=f"The run used {run.used_fraction:.0%} of its budget: at 100 % no new stage job "
                                   "starts until a person raises it.", evidence=evidence,
                           project_id=run.project_id, run_id=run.run_id)]


def in_cooldown(supervision: Supervision, settings: DirectorSettings, now: str) -> bool:
    """Whether the task was escalated less than ``escalation_cooldown_minutes`` ago."""
    last = supervision.last_escalated_at
    return bool(last and settings.escalation_cooldown_minutes
                and last > clock.plus_seconds(now, -60 * settings.escalation_cooldown_minutes))


def apply_policy(actions: Sequence[DirectorAction], task: Optional[TaskFacts], settings: DirectorSettings,
                 now: str) -> list[DirectorAction]:
    """The actions the director takes of those proposed: a task escalated within the cooldown gets
    no new escalation, and at most one at a time (nudges, reassignments and pauses go on); with
    ``pause_on_escalation`` an open task's escalation pauses it. Never two actions with one key."""
    taken: list[DirectorAction] = []
    for action in actions:
        if any(a.key == action.key for a in taken):
            continue
        if task is not None and action.kind == ActionKind.escalate:
            escalating = any(a.kind in (ActionKind.escalate, ActionKind.pause_task) for a in taken)
            if in_cooldown(task.supervision, settings, now) or (escalating and settings.escalation_cooldown_minutes):
                continue   # one escalation per task per cooldown, however many facts call for one
            if settings.pause_on_escalation and task.open:
                action = action.model_copy(update={"kind": ActionKind.pause_task})
        taken.append(action)
    return taken


def may_fire(task: Task, max_iterations: int) -> bool:
    """Whether any task rule could fire on ``task`` whatever the settings (a streak of at least two
    failures, its last iteration, a lost lease): when not, the director reads nothing at all."""
    if not task.supervision:
        return 2 <= max_iterations <= task.iteration
    supervision = supervision_of(task)
    losses = supervision.lease_losses
    return len(failure_streak(supervision.failures)) >= 2 or 2 <= max_iterations <= task.iteration \
        or bool(losses and losses.count >= 1)


def task_rules(task: TaskFacts, settings: DirectorSettings, now: str) -> list[DirectorAction]:
    """Every rule about one task that its own facts decide, after the policy."""
    if not settings.director_enabled:
        return []
    proposed = [*same_failure(task, settings, now), *near_max_iterations(task, settings, now),
                *lease_churn(task, settings, now)]
    return apply_policy(proposed, task, settings, now)


def escalation_window(now: str) -> str:
    """The hour an escalation counts in, for the per-project limit."""
    return now[:13]


def project_has_room(escalations_this_hour: int, settings: DirectorSettings) -> bool:
    limit = settings.max_escalations_per_project_per_hour
    return not limit or escalations_this_hour < limit


__all__ = ["BudgetFacts", "QueueFacts", "TaskFacts", "apply_policy", "budget_near_end", "escalation_window",
           "failure_streak", "idle_queue", "in_cooldown", "lease_churn", "may_fire", "median_or_none", "near_max_iterations",
           "project_has_room", "same_failure", "slow_stage", "task_rules"]
