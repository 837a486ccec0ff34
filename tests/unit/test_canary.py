"""The canary subset: deterministic, recomputable from the task ids and the salt, the right size,
never empty, and stable when tasks are added later. And what its gate is told."""

from __future__ import annotations

import hashlib
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain import canary

task_ids = st.lists(st.from_regex(r"task_[0-9A-Z]{26}", fullmatch=True), min_size=1, max_size=60, unique=True)
fractions = st.floats(min_value=0.001, max_value=0.5)
salts = st.from_regex(r"[0-9a-f]{16}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(ids=task_ids, salt=salts, fraction=fractions, min_tasks=st.integers(1, 5))
def test_the_subset_is_deterministic_and_of_the_promised_size(ids, salt, fraction, min_tasks):
    first = canary.select(ids, salt, fraction, min_tasks)
    again = canary.select(list(reversed(ids)), salt, fraction, min_tasks)
    assert first == again
    size = len(first.task_ids)
    assert size >= 1
    assert size == min(len(ids), max(min_tasks, math.floor(fraction * len(ids) + 0.5), 1))
    if min_tasks <= fraction * len(ids) + 0.5:
        assert abs(size - fraction * len(ids)) <= 0.5 + 1e-9   # the fraction, within rounding


@settings(max_examples=200, deadline=None)
@given(ids=task_ids, salt=salts, fraction=fractions)
def test_anyone_recomputes_it_from_the_salt(ids, salt, fraction):
    chosen = canary.select(ids, salt, fraction)
    scores = sorted(hashlib.sha256(f"{salt}:{task_id}".encode()).hexdigest() for task_id in ids)
    by_hand = {t for t in ids if hashlib.sha256(f"{salt}:{t}".encode()).hexdigest() in scores[:len(chosen.task_ids)]}
    assert chosen.task_ids == by_hand
    assert chosen.cutoff == max(canary.score(salt, t) for t in chosen.task_ids)


@settings(max_examples=200, deadline=None)
@given(ids=task_ids, later=task_ids, salt=salts, fraction=fractions)
def test_tasks_added_later_never_move_a_task_in_or_out(ids, later, salt, fraction):
    chosen = canary.select(ids, salt, fraction)
    # The cutoff reproduces the subset for the tasks that were there ...
    assert {t for t in ids if canary.joins(t, salt, chosen.cutoff)} == chosen.task_ids
    # ... and a late task's membership depends on nothing but itself.
    for task_id in later:
        if task_id not in ids:
            assert canary.joins(task_id, salt, chosen.cutoff) == (canary.score(salt, task_id) <= chosen.cutoff)
    assert {t for t in ids if canary.joins(t, salt, chosen.cutoff)} == chosen.task_ids


def test_another_salt_chooses_differently():
    ids = [f"task_{n:026d}" for n in range(200)]
    assert canary.select(ids, "0" * 16, 0.1).task_ids != canary.select(ids, "1" * 16, 0.1).task_ids


def test_a_run_without_tasks_has_an_empty_canary_that_nothing_joins():
    chosen = canary.select([], "ab" * 8, 0.2)
    assert chosen.task_ids == frozenset() and chosen.cutoff is None
    assert not canary.joins("task_x", "ab" * 8, None)


def test_the_gate_is_told_when_the_failure_rate_is_exceeded():
    fine = canary.outcome(tasks=4, passed=3, failed=0, looped_back_tasks=1, loop_backs=2, fix_tasks=1,
                          cost_usd=1.2345678, max_failure_rate=0.25)
    assert not fine.exceeded and fine.summary()["failure_rate"] == 0.25 and "warning" not in fine.summary()
    bad = canary.outcome(tasks=4, passed=2, failed=1, looped_back_tasks=1, loop_backs=1, fix_tasks=0,
                         cost_usd=0.5, max_failure_rate=0.25)
    summary = bad.summary()
    assert bad.exceeded and summary["exceeded"] is True
    assert "50%" in summary["warning"] and "25%" in summary["warning"]
    assert summary["cost_usd"] == 0.5 and summary["passed"] == 2
    assert not canary.outcome(tasks=2, passed=0, failed=2, looped_back_tasks=0, loop_backs=0, fix_tasks=0,
                              cost_usd=0, max_failure_rate=None).exceeded
