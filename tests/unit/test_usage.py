"""Usage roll-ups and budget states, without AWS: the counters a report adds, the usage they read
back as, and where a run stands against its ceilings."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from chalicelib.domain import usage
from chalicelib.domain.usage import BudgetState, UsageReport


def report(**body) -> UsageReport:
    return UsageReport.model_validate_json(json.dumps({"tokens_in": 0, "tokens_out": 0, "cost_usd": 0, **body}))


def test_a_report_adds_to_the_total_and_to_each_dimension():
    one = report(model="claude-sonnet-4-5", tokens_in=1000, tokens_out=200, tokens_cached=50, cost_usd=0.25,
                 wall_seconds=12.5)
    counters = usage.rollup_counters(one, stage="dev", role="dev", agent="agent-1")
    assert counters["total|cost_micros"] == 250_000 and counters["total|wall_ms"] == 12_500
    assert counters["model|claude-sonnet-4-5|tokens_in"] == 1000 and counters["agent|agent-1|reports"] == 1
    two = usage.rollup_counters(report(tokens_in=1, tokens_out=1, cost_usd=0.1), stage="qa", role="qa", agent="agent-2")
    summed = {k: counters.get(k, 0) + two.get(k, 0) for k in {*counters, *two}}
    rolled = usage.rollup_from_counters(summed)
    assert rolled["total"].cost_usd == pytest.approx(0.35) and rolled["total"].reports == 2
    assert rolled["total"].tokens_in == 1001 and rolled["total"].tokens_cached == 50
    assert set(rolled["by_stage"]) == {"dev", "qa"} and set(rolled["by_agent"]) == {"agent-1", "agent-2"}
    assert set(rolled["by_model"]) == {"claude-sonnet-4-5", usage.UNKNOWN_MODEL}
    assert rolled["by_stage"]["dev"].wall_seconds == 12.5


def test_a_task_keeps_its_own_running_totals():
    totals = usage.add_to_totals(None, report(tokens_in=10, tokens_out=5, cost_usd=0.1, wall_seconds=1))
    totals = usage.add_to_totals(totals, report(tokens_in=10, tokens_out=5, cost_usd=0.2))
    assert (totals.tokens_in, totals.tokens_out, totals.reports) == (20, 10, 2)
    assert totals.cost_usd == pytest.approx(0.3) and totals.wall_seconds == 1


@pytest.mark.parametrize("body", [
    {"tokens_in": -1}, {"cost_usd": -0.01}, {"cost_usd": "NaN"}, {"tokens_out": 10 ** 13},
    {"model": "a model with spaces"}, {"model": ""}, {"wall_seconds": -1}, {"extra": 1},
])
def test_bad_reports_are_refused(body):
    with pytest.raises(ValidationError):
        report(**body)


@pytest.mark.parametrize("cost, tokens, max_cost, max_tokens, state", [
    (0, 0, None, None, BudgetState.ok),
    (790_000, 0, 1.0, None, BudgetState.ok),
    (800_000, 0, 1.0, None, BudgetState.warning),
    (999_999, 0, 1.0, None, BudgetState.warning),
    (1_000_000, 0, 1.0, None, BudgetState.exhausted),
    (0, 850, None, 1000, BudgetState.warning),
    (100_000, 1000, 1.0, 1000, BudgetState.exhausted),   # the larger share decides
])
def test_budget_states(cost, tokens, max_cost, max_tokens, state):
    fraction = usage.used_fraction(cost, tokens, max_cost, max_tokens)
    assert usage.budget_state(fraction) == state


def test_the_budget_of_a_run_item():
    item = {"ceilings": {"max_cost_usd": 2.0, "max_tokens": None}, usage.RUN_COST_COUNTER: 1_700_000,
            usage.RUN_TOKENS_COUNTER: 10}
    budget = usage.budget_of_run(item)
    assert (budget.max_cost_usd, budget.max_tokens, budget.used_fraction, budget.state) == \
        (2.0, None, 0.85, BudgetState.warning)
