"""The canary: which tasks of a run go first, and what the gate after them is told.

The subset is chosen from the task ids and the run's ``salt`` alone, so anyone can recompute it:

    score(task) = sha256(f"{salt}:{task_id}") as hex
    size        = min(n, max(min_tasks, floor(fraction * n + 0.5)))      (n = the run's tasks)
    canary      = the ``size`` tasks with the lowest scores; ``cutoff`` = the highest of them

A task added to the run later joins the canary exactly when its score is at most the cutoff, so
adding tasks never moves a task in or out of the subset (and late tasks join at about ``fraction``).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

SALT_BYTES = 8


def new_salt() -> str:
    return secrets.token_hex(SALT_BYTES)


def score(salt: str, task_id: str) -> str:
    return hashlib.sha256(f"{salt}:{task_id}".encode()).hexdigest()


def canary_size(total: int, fraction: float, min_tasks: int) -> int:
    """How many of ``total`` tasks go first: ``fraction`` of them rounded half up, at least
    ``min_tasks`` and at least one, at most all."""
    if total <= 0:
        return 0
    return min(total, max(1, min_tasks, math.floor(fraction * total + 0.5)))


@dataclass(frozen=True)
class Selection:
    task_ids: frozenset[str]
    cutoff: Optional[str]   # the highest score selected (None when the run had no tasks)


def select(task_ids: Iterable[str], salt: str, fraction: float, min_tasks: int = 1) -> Selection:
    ids = sorted(set(task_ids), key=lambda task_id: (score(salt, task_id), task_id))
    chosen = ids[:canary_size(len(ids), fraction, min_tasks)]
    return Selection(frozenset(chosen), score(salt, chosen[-1]) if chosen else None)


def joins(task_id: str, salt: str, cutoff: Optional[str]) -> bool:
    """Whether a task added after the start belongs to the canary."""
    return cutoff is not None and score(salt, task_id) <= cutoff


@dataclass(frozen=True)
class CanaryOutcome:
    """What the canary gate's request says: how the canary tasks did."""

    tasks: int
    passed: int
    failed: int
    loop_backs: int
    fix_tasks: int
    cost_usd: float
    failure_rate: float
    max_failure_rate: Optional[float]

    @property
    def exceeded(self) -> bool:
        return self.max_failure_rate is not None and self.failure_rate > self.max_failure_rate

    def summary(self) -> dict[str, object]:
        data: dict[str, object] = {"tasks": self.tasks, "passed": self.passed, "failed": self.failed,
                                   "loop_backs": self.loop_backs, "fix_tasks": self.fix_tasks,
                                   "cost_usd": round(self.cost_usd, 6), "failure_rate": round(self.failure_rate, 4),
                                   "max_failure_rate": self.max_failure_rate, "exceeded": self.exceeded}
        if self.exceeded:
            data["warning"] = (f"{self.failure_rate:.0%} of the canary tasks failed or looped back, more than "
                               f"max_failure_rate {self.max_failure_rate:.0%}: the rest starts only if a person "
                               "approves")
        return data


def outcome(*, tasks: int, passed: int, failed: int, looped_back_tasks: int, loop_backs: int, fix_tasks: int,
            cost_usd: float, max_failure_rate: Optional[float]) -> CanaryOutcome:
    """A canary task counts against the rate if it failed or looped back at least once."""
    troubled = min(tasks, failed + looped_back_tasks)
    rate = troubled / tasks if tasks else 0.0
    return CanaryOutcome(tasks=tasks, passed=passed, failed=failed, loop_backs=loop_backs, fix_tasks=fix_tasks,
                         cost_usd=cost_usd, failure_rate=rate, max_failure_rate=max_failure_rate)


__all__ = ["CanaryOutcome", "Selection", "canary_size", "joins", "new_salt", "outcome", "score", "select"]


# ---- counters on the run item: how the canary is doing, kept in the transactions that move its tasks

OPEN = "canary_open"            # canary tasks not ended yet
DONE = "canary_done"
FAILED = "canary_failed"
LOOP_BACKS = "canary_loop_backs"
LOOPED_TASKS = "canary_looped_tasks"   # canary tasks that looped back at least once
FIX_TASKS = "canary_fix_tasks"
COST = "canary_cost_micros"
TOTAL = "canary_total"
HELD = "n_held"                 # tasks held back until the gate


def task_deltas(*, canary: bool, ended_as: Optional[str], looped_back: bool, first_iteration: bool) -> dict[str, int]:
    """What one change of a canary task adds to the canary's counters (nothing for other tasks).
    ``ended_as``: the status it ended with (``done``, ``failed``, ``cancelled``), None if still open."""
    if not canary:
        return {}
    deltas: dict[str, int] = {}
    if ended_as is not None:
        deltas[OPEN] = -1
        if ended_as == "done":
            deltas[DONE] = 1
        elif ended_as == "failed":
            deltas[FAILED] = 1
    if looped_back:
        deltas[LOOP_BACKS] = 1
        if first_iteration:
            deltas[LOOPED_TASKS] = 1
    return deltas


def outcome_of_run(counters: Mapping[str, Any], max_failure_rate: Optional[float]) -> CanaryOutcome:
    def get(name: str) -> int:
        return int(counters.get(name, 0) or 0)

    return outcome(tasks=get(TOTAL), passed=get(DONE), failed=get(FAILED), looped_back_tasks=get(LOOPED_TASKS),
                   loop_backs=get(LOOP_BACKS), fix_tasks=get(FIX_TASKS), cost_usd=get(COST) / 1_000_000,
                   max_failure_rate=max_failure_rate)


def placement(run_item: Mapping[str, Any], task_id: str, *, parent_is_canary: bool = False) -> tuple[bool, bool]:
    """(canary, held) for a task added to a run after its start: while the canary works, a task
    joins it by the cutoff (a fix task of a canary task always does) and any other is held; once
    the gate is pending or rejected every new task is held; afterwards nothing is."""
    state = run_item.get("canary_state")
    if state == "running":
        joined = parent_is_canary or joins(task_id, str(run_item.get("canary_salt")), run_item.get("canary_cutoff"))
        return joined, not joined
    if state in ("gate", "rejected"):
        return False, True
    return False, False
