"""Usage and budgets: what agents report they spent, rolled up per run, stage, role, agent and
model, and where a run stands against its ``max_cost_usd`` / ``max_tokens`` ceilings.

Amounts are kept as integer counters (DynamoDB ADDs them in the transaction that records a report):
cost in micro-dollars, wall time in milliseconds, so sums never drift. A run's budget counts
``cost_usd`` and ``tokens_in + tokens_out`` (cached input is re-read context: its price is in the
cost, it does not count twice as tokens).
"""

from enum import Enum
from typing import Any, Mapping, Optional

from pydantic import Field

from .base import DomainModel
from .fields import STRICT_INPUT

MICROS = 1_000_000
WARNING_FRACTION = 0.8
METRICS = ("tokens_in", "tokens_out", "tokens_cached", "cost_micros", "wall_ms")
DIMENSIONS = ("stage", "role", "agent", "model")
UNKNOWN_MODEL = "unknown"
RUN_COST_COUNTER = "usage_cost_micros"      # on the run item: what the budget check reads
RUN_TOKENS_COUNTER = "usage_tokens"
TOKENS_LIMIT = 10 ** 12
COST_LIMIT_USD = 1_000_000.0


class UsageReport(DomainModel):
    """One report of what a job used (``POST /tasks/{id}/usage``, or ``usage`` on heartbeat/advance)."""

    model_config = STRICT_INPUT
    model: Optional[str] = Field(default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$",
                                 description="the model that did the work, e.g. claude-sonnet-4-5")
    tokens_in: int = Field(ge=0, le=TOKENS_LIMIT)
    tokens_out: int = Field(ge=0, le=TOKENS_LIMIT)
    tokens_cached: int = Field(default=0, ge=0, le=TOKENS_LIMIT)
    cost_usd: float = Field(ge=0, le=COST_LIMIT_USD, allow_inf_nan=False)
    wall_seconds: Optional[float] = Field(default=None, ge=0, le=365 * 86_400, allow_inf_nan=False)

    def counters(self) -> dict[str, int]:
        return {"tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "tokens_cached": self.tokens_cached,
                "cost_micros": round(self.cost_usd * MICROS), "wall_ms": round((self.wall_seconds or 0) * 1000)}

    @property
    def budget_tokens(self) -> int:
        return self.tokens_in + self.tokens_out


class UsageTotals(DomainModel):
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    cost_usd: float = 0.0
    wall_seconds: float = 0.0
    reports: int = 0


def totals_from_counters(counters: Mapping[str, Any], prefix: str = "") -> UsageTotals:
    def get(metric: str) -> int:
        return int(counters.get(prefix + metric, 0) or 0)

    return UsageTotals(tokens_in=get("tokens_in"), tokens_out=get("tokens_out"), tokens_cached=get("tokens_cached"),
                       cost_usd=get("cost_micros") / MICROS, wall_seconds=get("wall_ms") / 1000,
                       reports=get("reports"))


def add_to_totals(totals: Optional[UsageTotals], report: UsageReport) -> UsageTotals:
    """A task's own usage after one more report."""
    current = totals or UsageTotals()
    return UsageTotals(tokens_in=current.tokens_in + report.tokens_in, tokens_out=current.tokens_out + report.tokens_out,
                       tokens_cached=current.tokens_cached + report.tokens_cached,
                       cost_usd=round(current.cost_usd + report.cost_usd, 6),
                       wall_seconds=round(current.wall_seconds + (report.wall_seconds or 0), 3),
                       reports=current.reports + 1)


def rollup_counters(report: UsageReport, *, stage: str, role: str, agent: str) -> dict[str, int]:
    """The counters one report adds: ``total|metric`` and ``dimension|value|metric`` for each
    dimension (the run's usage item keeps them all, flat, so one ADD records a report)."""
    values = report.counters() | {"reports": 1}
    keys = [("total",)] + [(dimension, value) for dimension, value in
                           (("stage", stage), ("role", role), ("agent", agent),
                            ("model", report.model or UNKNOWN_MODEL))]
    return {"|".join((*key, metric)): amount for key in keys for metric, amount in values.items()}


def rollup_from_counters(counters: Mapping[str, Any]) -> dict[str, Any]:
    """``{total, by_stage, by_role, by_agent, by_model}`` from the usage item's counters."""
    by: dict[str, dict[str, dict[str, int]]] = {d: {} for d in DIMENSIONS}
    for name, amount in counters.items():
        parts = name.split("|")
        if len(parts) == 3 and parts[0] in by:
            by[parts[0]].setdefault(parts[1], {})[parts[2]] = int(amount or 0)
    return {"total": totals_from_counters(counters, "total|"),
            **{f"by_{d}": {value: totals_from_counters(metrics) for value, metrics in sorted(by[d].items())}
               for d in DIMENSIONS}}


class BudgetState(str, Enum):
    ok = "ok"
    warning = "warning"
    exhausted = "exhausted"


BUDGET_ORDER = {BudgetState.ok: 0, BudgetState.warning: 1, BudgetState.exhausted: 2}


def used_fraction(cost_micros: int, tokens: int, max_cost_usd: Optional[float], max_tokens: Optional[int]) -> float:
    """The larger of the two shares of the budget used (0 without ceilings)."""
    shares = []
    if max_cost_usd:
        shares.append(cost_micros / (max_cost_usd * MICROS))
    if max_tokens:
        shares.append(tokens / max_tokens)
    return max(shares, default=0.0)


def budget_state(fraction: float) -> BudgetState:
    if fraction >= 1.0:
        return BudgetState.exhausted
    if fraction >= WARNING_FRACTION:
        return BudgetState.warning
    return BudgetState.ok


class Budget(DomainModel):
    max_cost_usd: Optional[float] = None
    max_tokens: Optional[int] = None
    used_fraction: float = 0.0
    state: BudgetState = BudgetState.ok


def budget_of_run(run_item: Mapping[str, Any]) -> Budget:
    ceilings = run_item.get("ceilings") or {}
    max_cost, max_tokens = ceilings.get("max_cost_usd"), ceilings.get("max_tokens")
    fraction = used_fraction(int(run_item.get(RUN_COST_COUNTER, 0) or 0), int(run_item.get(RUN_TOKENS_COUNTER, 0) or 0),
                             None if max_cost is None else float(max_cost), None if max_tokens is None else int(max_tokens))
    return Budget(max_cost_usd=None if max_cost is None else float(max_cost),
                  max_tokens=None if max_tokens is None else int(max_tokens),
                  used_fraction=round(fraction, 4), state=budget_state(fraction))


class RunUsage(DomainModel):
    total: UsageTotals
    by_stage: dict[str, UsageTotals]
    by_role: dict[str, UsageTotals]
    by_agent: dict[str, UsageTotals]
    by_model: dict[str, UsageTotals]
    budget: Budget


__all__ = ["BUDGET_ORDER", "Budget", "BudgetState", "RunUsage", "UsageReport", "UsageTotals", "add_to_totals",
           "budget_of_run", "budget_state", "rollup_counters", "rollup_from_counters", "totals_from_counters",
           "used_fraction"]
