"""Run progress from the per-stage and per-status counters kept on the run item."""

from __future__ import annotations

from typing import Mapping, Optional

from .entities import Progress
from .enums import RunStatus, Stage, TaskStatus, TERMINAL_TASK_STATUSES
from .pipeline import Transition


def stage_counter(stage: Stage | str) -> str:
    return f"n_stage_{Stage(stage).value}"


def status_counter(status: TaskStatus | str) -> str:
    return f"n_status_{TaskStatus(status).value}"


TOTAL_COUNTER = "n_total"


def counter_deltas(transition: Transition) -> dict[str, int]:
    """The counter increments a transition implies (empty when nothing moved)."""
    deltas: dict[str, int] = {}
    if transition.from_stage != transition.to_stage:
        deltas[stage_counter(transition.from_stage)] = -1
        deltas[stage_counter(transition.to_stage)] = 1
    if transition.from_status != transition.to_status:
        deltas[status_counter(transition.from_status)] = -1
        deltas[status_counter(transition.to_status)] = 1
    return deltas


def new_task_deltas(stage: Stage, status: TaskStatus, count: int = 1) -> dict[str, int]:
    return {TOTAL_COUNTER: count, stage_counter(stage): count, status_counter(status): count}


def progress_from_counters(item: Mapping[str, object]) -> Progress:
    """Build the progress view; stages and statuses with no task show 0."""
    total = int(item.get(TOTAL_COUNTER, 0) or 0)
    by_stage = {s.value: int(item.get(stage_counter(s), 0) or 0) for s in Stage if s != Stage.none}
    by_status = {s.value: int(item.get(status_counter(s), 0) or 0) for s in TaskStatus}
    finished = sum(by_status[s.value] for s in TERMINAL_TASK_STATUSES)
    percent = round(100.0 * finished / total, 1) if total else 0.0
    return Progress(total=total, by_stage=by_stage, by_status=by_status, percent_complete=percent)


def all_tasks_finished(item: Mapping[str, object]) -> bool:
    progress = progress_from_counters(item)
    return progress.total > 0 and progress.percent_complete >= 100.0


def apply_deltas(item: Mapping[str, object], deltas: Mapping[str, int]) -> dict[str, object]:
    after = dict(item)
    for name, delta in deltas.items():
        after[name] = int(after.get(name, 0) or 0) + delta
    return after


def status_when_all_finished(item: Mapping[str, object], deploy_gate: bool,
                             released: bool = False) -> Optional[RunStatus]:
    """The run's next status once every task ended, or None while some are still open.

    Any failed task fails the run (nothing ships with a known failure), as does a run whose
    tasks were all cancelled; otherwise the run waits for the deploy approval, or succeeds at once
    when it has no deploy gate or its release task (created by the approval) is done.
    """
    if not all_tasks_finished(item):
        return None
    progress = progress_from_counters(item)
    if progress.by_status[TaskStatus.failed.value]:
        return RunStatus.failed
    if progress.by_status[TaskStatus.done.value] == 0:
        return RunStatus.failed
    if released or not deploy_gate:
        return RunStatus.succeeded
    return RunStatus.awaiting_approval


RUN_OUTCOME = {RunStatus.awaiting_approval: "approval", RunStatus.succeeded: "succeeded",
               RunStatus.failed: "failed", RunStatus.killed: "failed", RunStatus.rolled_back: "succeeded"}
