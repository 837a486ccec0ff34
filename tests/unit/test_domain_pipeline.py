"""Pure domain tests of the stage machine (chalicelib/domain/pipeline.py) and the progress counters
(chalicelib/domain/progress.py). No AWS: every time is an explicit RFC 3339 string."""

from __future__ import annotations

import itertools
from typing import Any, Callable, Optional, Sequence

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from chalicelib.domain import clock, pipeline
from chalicelib.domain.errors import ConflictError, InvalidInputError
from chalicelib.domain.entities import Task
from chalicelib.domain.enums import AdvanceResult, PIPELINE_STAGES, RunStatus, Stage, TaskStatus
from chalicelib.domain.progress import (TOTAL_COUNTER, all_tasks_finished, apply_deltas, counter_deltas,
                                        new_task_deltas, progress_from_counters, stage_counter, status_counter,
                                        status_when_all_finished)

T0 = "2030-01-01T00:00:00.000000Z"
ALL = [Stage.dev, Stage.qa, Stage.sec, Stage.docs]
PASS, FAIL = AdvanceResult.pass_, AdvanceResult.fail


def at(seconds: float) -> str:
    """T0 + seconds, in the domain's fixed-width format."""
    return clock.plus_seconds(T0, seconds)


def make_task(stages: Sequence[Stage] = ALL, now: str = T0, **fields: Any) -> Task:
    base: dict[str, Any] = dict(id="task_T", run_id="run_R", project_id="demo", title="t",
                                stage=stages[0], status=TaskStatus.queued, created_at=now, updated_at=now,
                                enqueued_at=now)
    base.update(fields)
    return Task(**base)


def claimed(task: Task, now: str = T0, lease: int = 60, claim_id: str = "clm_1", agent: str = "a1") -> Task:
    after, _ = pipeline.claim(task, stage=task.stage, agent_id=agent, claim_id=claim_id, now=now,
                              lease_seconds=lease)
    return after


def state(task: Task) -> dict[str, Any]:
    """Every field, including the server-only ones pydantic excludes from dumps."""
    return dict(task.__dict__)


# --------------------------------------------------------------------------- clock helpers


def test_clock_strings_are_fixed_width_and_sort_as_time():
    assert at(0) == T0
    assert at(1.5) == "2030-01-01T00:00:01.500000Z"
    assert at(86_400) == "2030-01-02T00:00:00.000000Z"
    values = [at(s) for s in (0, 0.000001, 9, 10, 59.999999, 3600, 86_399)]
    assert sorted(values) == values
    assert len({len(v) for v in values}) == 1
    assert clock.parse_iso(at(42)) == clock.parse_iso(T0) + (clock.parse_iso(at(42)) - clock.parse_iso(T0))
    assert clock.to_iso(clock.parse_iso(at(7.25))) == at(7.25)


# --------------------------------------------------------------------------- lease checks


def test_lease_is_live_strictly_before_expiry():
    task = claimed(make_task(), now=T0, lease=60)
    assert task.lease_expires_at == at(60)
    assert pipeline.lease_is_live(task, at(59.999999))
    assert not pipeline.lease_is_live(task, at(60))          # expiry instant: gone
    assert not pipeline.lease_is_live(task, at(61))
    assert not pipeline.lease_is_live(make_task(), T0)      # no lease at all


def test_is_claimable():
    queued = make_task()
    assert pipeline.is_claimable(queued, Stage.dev, T0)
    assert not pipeline.is_claimable(queued, Stage.qa, T0)
    leased = claimed(queued, lease=30)
    assert not pipeline.is_claimable(leased, Stage.dev, at(29))
    assert pipeline.is_claimable(leased, Stage.dev, at(30))
    for status in (TaskStatus.done, TaskStatus.failed, TaskStatus.cancelled):
        assert not pipeline.is_claimable(make_task(status=status, enqueued_at=None), Stage.dev, T0)


def test_check_lease_names_the_reason():
    task = claimed(make_task(), lease=60, claim_id="clm_A")
    pipeline.check_lease(task, "clm_A", at(59))
    with pytest.raises(ConflictError) as wrong:
        pipeline.check_lease(task, "clm_B", at(1))
    assert wrong.value.code == "lease_not_held"
    with pytest.raises(ConflictError) as expired:
        pipeline.check_lease(task, "clm_A", at(60))
    assert expired.value.code == "lease_expired"
    with pytest.raises(ConflictError) as queued:
        pipeline.check_lease(make_task(), "clm_A", T0)
    assert queued.value.code == "lease_not_held"


# --------------------------------------------------------------------------- claim


def test_claim_takes_a_queued_task():
    task = make_task()
    after, transition = pipeline.claim(task, stage=Stage.dev, agent_id="agent-7", claim_id="clm_X",
                                       now=at(5), lease_seconds=900)
    assert after.status == TaskStatus.in_progress
    assert after.stage == Stage.dev
    assert after.claimed_by == "agent-7"
    assert after.claim_id == "clm_X"
    assert after.lease_expires_at == at(905)
    assert after.enqueued_at is None
    assert after.version == task.version + 1
    assert after.updated_at == at(5)
    assert after.iteration == 1
    assert transition == pipeline.Transition("task.claimed", Stage.dev, Stage.dev, TaskStatus.queued,
                                             TaskStatus.in_progress)
    assert counter_deltas(transition) == {status_counter("queued"): -1, status_counter("in_progress"): 1}
    # the input is not touched
    assert task.status == TaskStatus.queued and task.version == 1 and task.claim_id is None


def test_claim_refuses_wrong_stage_live_lease_and_terminal_tasks():
    task = make_task()
    with pytest.raises(ConflictError) as error:
        pipeline.claim(task, stage=Stage.qa, agent_id="a", claim_id="c", now=T0, lease_seconds=60)
    assert error.value.code == "not_claimable"
    leased = claimed(task, lease=60)
    with pytest.raises(ConflictError):
        pipeline.claim(leased, stage=Stage.dev, agent_id="b", claim_id="c2", now=at(59), lease_seconds=60)
    done = make_task(stage=Stage.complete, status=TaskStatus.done, enqueued_at=None)
    with pytest.raises(ConflictError):
        pipeline.claim(done, stage=Stage.complete, agent_id="a", claim_id="c", now=T0, lease_seconds=60)


def test_an_expired_lease_can_be_claimed_again_and_the_old_claim_is_dead():
    first = claimed(make_task(), now=T0, lease=60, claim_id="clm_old", agent="slow")
    second, transition = pipeline.claim(first, stage=Stage.dev, agent_id="fast", claim_id="clm_new",
                                        now=at(61), lease_seconds=60)
    assert second.claimed_by == "fast" and second.claim_id == "clm_new"
    assert second.lease_expires_at == at(121)
    assert second.version == first.version + 1
    assert not transition.moves_counters               # in_progress at dev before and after
    for attempt in (lambda: pipeline.heartbeat(second, claim_id="clm_old", now=at(62), lease_seconds=60),
                    lambda: pipeline.advance(second, claim_id="clm_old", result=PASS, stages=ALL,
                                             max_iterations=3, now=at(62))):
        with pytest.raises(ConflictError) as error:
            attempt()
        assert error.value.code == "lease_not_held"


# --------------------------------------------------------------------------- heartbeat


def test_heartbeat_extends_from_now():
    task = claimed(make_task(), lease=60, claim_id="clm_A")
    after = pipeline.heartbeat(task, claim_id="clm_A", now=at(50), lease_seconds=120)
    assert after.lease_expires_at == at(170)
    assert after.version == task.version + 1
    assert (after.stage, after.status, after.claim_id, after.claimed_by) == (
        task.stage, task.status, task.claim_id, task.claimed_by)


@pytest.mark.parametrize("claim_id, now, code", [("clm_B", 10, "lease_not_held"), ("clm_A", 60, "lease_expired"),
                                                 ("clm_A", 3600, "lease_expired")])
def test_heartbeat_without_the_lease_changes_nothing(claim_id, now, code):
    task = claimed(make_task(), lease=60, claim_id="clm_A")
    before = state(task)
    with pytest.raises(ConflictError) as error:
        pipeline.heartbeat(task, claim_id=claim_id, now=at(now), lease_seconds=60)
    assert error.value.code == code
    assert state(task) == before


# --------------------------------------------------------------------------- advance


@pytest.mark.parametrize("stages, current, expected", [
    (ALL, Stage.dev, Stage.qa), (ALL, Stage.qa, Stage.sec), (ALL, Stage.sec, Stage.docs),
    (ALL, Stage.docs, Stage.complete), ([Stage.qa, Stage.docs], Stage.qa, Stage.docs),
    ([Stage.qa, Stage.docs], Stage.docs, Stage.complete), ([Stage.sec], Stage.sec, Stage.complete),
])
def test_advance_pass_moves_to_the_next_stage_of_the_run(stages, current, expected):
    task = claimed(make_task(stages, stage=current, iteration=2), now=T0, lease=60, claim_id="clm_A")
    after, transition = pipeline.advance(task, claim_id="clm_A", result=PASS, stages=stages, max_iterations=3,
                                         now=at(30))
    assert after.stage == expected
    assert after.status == (TaskStatus.done if expected == Stage.complete else TaskStatus.queued)
    assert after.iteration == 2
    assert (after.claim_id, after.claimed_by, after.lease_expires_at) == (None, None, None)
    assert after.enqueued_at == (None if expected == Stage.complete else at(30))
    assert after.version == task.version + 1
    assert transition.action == "task.passed"
    deltas = counter_deltas(transition)
    assert deltas[stage_counter(current)] == -1 and deltas[stage_counter(expected)] == 1
    assert deltas[status_counter(TaskStatus.in_progress)] == -1
    assert deltas[status_counter(after.status)] == 1


def test_advance_fail_loops_back_to_the_first_stage_with_the_next_iteration():
    stages = [Stage.qa, Stage.sec, Stage.docs]
    task = claimed(make_task(stages, stage=Stage.sec, iteration=1), claim_id="clm_A")
    after, transition = pipeline.advance(task, claim_id="clm_A", result=FAIL, stages=stages, max_iterations=3,
                                         now=at(10))
    assert (after.stage, after.status, after.iteration) == (Stage.qa, TaskStatus.queued, 2)
    assert after.claim_id is None and after.enqueued_at == at(10)
    assert transition.action == "task.looped_back"


@pytest.mark.parametrize("max_iterations", [1, 2, 5])
def test_advance_fail_past_max_iterations_fails_the_task_where_it_is(max_iterations):
    task = claimed(make_task(stage=Stage.qa, iteration=max_iterations), claim_id="clm_A")
    after, transition = pipeline.advance(task, claim_id="clm_A", result=FAIL, stages=ALL,
                                         max_iterations=max_iterations, now=at(10))
    assert (after.stage, after.status, after.iteration) == (Stage.qa, TaskStatus.failed, max_iterations)
    assert after.claim_id is None and after.enqueued_at is None and after.lease_expires_at is None
    assert transition.action == "task.failed"
    assert counter_deltas(transition) == {status_counter("in_progress"): -1, status_counter("failed"): 1}


def test_advance_with_a_stale_or_expired_claim_changes_nothing():
    task = claimed(make_task(), now=T0, lease=60, claim_id="clm_A")
    before = state(task)
    for claim_id, now in (("clm_B", at(1)), ("clm_A", at(60)), ("", at(1))):
        with pytest.raises(ConflictError):
            pipeline.advance(task, claim_id=claim_id, result=PASS, stages=ALL, max_iterations=3, now=now)
    queued = make_task()
    with pytest.raises(ConflictError):
        pipeline.advance(queued, claim_id="clm_A", result=FAIL, stages=ALL, max_iterations=3, now=T0)
    assert state(task) == before


def test_a_release_task_outside_the_run_stages_completes_on_pass():
    task = claimed(make_task([Stage.cicd], stage=Stage.cicd), claim_id="clm_A")
    after, _ = pipeline.advance(task, claim_id="clm_A", result=PASS, stages=ALL, max_iterations=3, now=at(1))
    assert (after.stage, after.status) == (Stage.complete, TaskStatus.done)


# --------------------------------------------------------------------------- set_stage, cancel, expire


def test_set_stage_requeues_at_the_same_iteration_and_drops_the_claim():
    task = claimed(make_task(stage=Stage.dev, iteration=2), claim_id="clm_A")
    after, transition = pipeline.set_stage(task, stage=Stage.sec, stages=ALL, now=at(5))
    assert (after.stage, after.status, after.iteration) == (Stage.sec, TaskStatus.queued, 2)
    assert (after.claim_id, after.claimed_by, after.lease_expires_at) == (None, None, None)
    assert after.enqueued_at == at(5) and after.version == task.version + 1
    assert transition.action == "task.stage_set"
    with pytest.raises(ConflictError):
        pipeline.heartbeat(after, claim_id="clm_A", now=at(6), lease_seconds=60)


def test_set_stage_complete_is_done_and_a_failed_task_can_be_requeued():
    failed = make_task(stage=Stage.qa, status=TaskStatus.failed, iteration=3, enqueued_at=None)
    done, _ = pipeline.set_stage(failed, stage=Stage.complete, stages=ALL, now=at(1))
    assert (done.stage, done.status, done.enqueued_at) == (Stage.complete, TaskStatus.done, None)
    again, _ = pipeline.set_stage(failed, stage=Stage.dev, stages=ALL, now=at(1))
    assert (again.stage, again.status, again.iteration) == (Stage.dev, TaskStatus.queued, 3)


@pytest.mark.parametrize("stage", [Stage.none, Stage.cicd, Stage.sec])
def test_set_stage_outside_the_run_is_invalid(stage):
    task = make_task([Stage.dev, Stage.qa])
    before = state(task)
    with pytest.raises(InvalidInputError) as error:
        pipeline.set_stage(task, stage=stage, stages=[Stage.dev, Stage.qa], now=at(1))
    assert error.value.code == "invalid_stage"
    assert state(task) == before


def test_set_stage_of_a_cancelled_task_is_a_conflict():
    task = make_task(status=TaskStatus.cancelled, enqueued_at=None)
    with pytest.raises(ConflictError) as error:
        pipeline.set_stage(task, stage=Stage.qa, stages=ALL, now=at(1))
    assert error.value.code == "task_cancelled"


def test_cancel():
    queued = make_task()
    after, transition = pipeline.cancel(queued, now=at(1))
    assert after.status == TaskStatus.cancelled and after.stage == Stage.dev and after.enqueued_at is None
    assert counter_deltas(transition) == {status_counter("queued"): -1, status_counter("cancelled"): 1}
    leased = claimed(make_task(), claim_id="clm_A")
    after, _ = pipeline.cancel(leased, now=at(1))
    assert after.status == TaskStatus.cancelled and after.claim_id is None and after.lease_expires_at is None
    for status, stage in ((TaskStatus.done, Stage.complete), (TaskStatus.failed, Stage.qa),
                          (TaskStatus.cancelled, Stage.dev)):
        assert pipeline.cancel(make_task(stage=stage, status=status, enqueued_at=None), now=at(1)) is None


def test_expire_lease():
    leased = claimed(make_task(stage=Stage.qa, iteration=2), now=T0, lease=60, claim_id="clm_A")
    assert pipeline.expire_lease(leased, now=at(59)) is None
    assert pipeline.expire_lease(make_task(), now=at(600)) is None
    after, transition = pipeline.expire_lease(leased, now=at(60))
    assert (after.stage, after.status, after.iteration) == (Stage.qa, TaskStatus.queued, 2)
    assert (after.claim_id, after.claimed_by, after.lease_expires_at) == (None, None, None)
    assert after.enqueued_at == at(60) and after.version == leased.version + 1
    assert transition.action == "task.lease_expired"
    with pytest.raises(ConflictError):
        pipeline.advance(after, claim_id="clm_A", result=PASS, stages=ALL, max_iterations=3, now=at(61))


# --------------------------------------------------------------------------- progress counters


def test_progress_from_counters_and_run_outcome():
    item = apply_deltas({}, new_task_deltas(Stage.dev, TaskStatus.queued, 4))
    progress = progress_from_counters(item)
    assert progress.total == 4 and progress.by_stage["dev"] == 4 and progress.by_status["queued"] == 4
    assert "none" not in progress.by_stage and progress.percent_complete == 0.0
    assert status_when_all_finished(item, deploy_gate=True) is None
    done = {TOTAL_COUNTER: 4, stage_counter("complete"): 3, stage_counter("qa"): 1,
            status_counter("done"): 3, status_counter("cancelled"): 1}
    assert all_tasks_finished(done)
    assert progress_from_counters(done).percent_complete == 100.0
    assert status_when_all_finished(done, deploy_gate=True) == RunStatus.awaiting_approval
    assert status_when_all_finished(done, deploy_gate=False) == RunStatus.succeeded
    failed = {**done, status_counter("done"): 2, status_counter("failed"): 1}
    assert status_when_all_finished(failed, deploy_gate=False) == RunStatus.failed
    cancelled = {TOTAL_COUNTER: 1, status_counter("cancelled"): 1}
    assert status_when_all_finished(cancelled, deploy_gate=False) == RunStatus.failed
    assert progress_from_counters({TOTAL_COUNTER: 3, status_counter("done"): 1}).percent_complete == 33.3


# --------------------------------------------------------------------------- the state machine

ordered_subsets = st.lists(st.sampled_from(PIPELINE_STAGES), min_size=1, max_size=4, unique=True).map(
    lambda chosen: sorted(chosen, key=PIPELINE_STAGES.index))


class OneTask(RuleBasedStateMachine):
    """One task under a fake clock, driven by every operation the pipeline offers.

    The machine keeps its own record (claims issued, stages passed since the last loop-back or
    set-stage, counters built from the transitions) and checks the pipeline's answers against it.
    """

    @initialize(stages=ordered_subsets, max_iterations=st.integers(min_value=1, max_value=4))
    def start(self, stages: list[Stage], max_iterations: int) -> None:
        self.stages = stages
        self.max_iterations = max_iterations
        self.now = T0
        self.task = make_task(stages, now=T0)
        self.version = 1
        self.claim_ids = (f"clm_{n}" for n in itertools.count(1))
        self.current_claim: Optional[str] = None
        self.stale_claims: list[str] = []
        self.segment_start = 0                 # index in stages where the current pass began
        self.passed: list[Stage] = []          # stages passed, in order, since then
        self.forced_complete = False           # reached complete by set_stage, not by passing
        self.counters = apply_deltas({}, new_task_deltas(stages[0], TaskStatus.queued))

    # ---- helpers

    def lease_live(self) -> bool:
        return self.task.lease_expires_at is not None and self.task.lease_expires_at > self.now

    def holds_lease(self) -> bool:
        return (self.current_claim is not None and self.task.status == TaskStatus.in_progress
                and self.lease_live())

    def drop_claim(self) -> None:
        if self.current_claim is not None:
            self.stale_claims.append(self.current_claim)
        self.current_claim = None

    def accept(self, after: Task, transition: Optional[pipeline.Transition]) -> None:
        assert after.version == self.task.version + 1, "each change adds exactly 1 to version"
        assert after.updated_at == self.now
        assert (after.id, after.run_id, after.created_at) == (self.task.id, self.task.run_id, self.task.created_at)
        if transition is not None:
            assert (transition.from_stage, transition.from_status) == (self.task.stage, self.task.status)
            assert (transition.to_stage, transition.to_status) == (after.stage, after.status)
            self.counters = apply_deltas(self.counters, counter_deltas(transition))
        self.task = after
        self.version += 1

    def refuse(self, error: type[Exception], call: Callable[[], Any]) -> None:
        """The call must raise ``error`` and leave the task exactly as it was."""
        before = state(self.task)
        snapshot = self.task.model_copy(deep=True)
        with pytest.raises(error):
            call()
        assert state(self.task) == before
        assert self.task == snapshot

    # ---- time

    @rule(seconds=st.integers(min_value=0, max_value=120))
    def tick(self, seconds: int) -> None:
        self.now = clock.plus_seconds(self.now, seconds)

    @precondition(lambda self: self.task.status == TaskStatus.in_progress)
    @rule(extra=st.integers(min_value=0, max_value=30), sweep=st.booleans())
    def expire(self, extra: int, sweep: bool) -> None:
        """Let the clock pass the lease; the sweeper may or may not re-queue the task."""
        past = clock.plus_seconds(self.task.lease_expires_at, extra)
        self.now = max(self.now, past)
        assert not self.lease_live()
        if sweep:
            result = pipeline.expire_lease(self.task, now=self.now)
            assert result is not None
            after, transition = result
            assert (after.stage, after.iteration, after.status) == (self.task.stage, self.task.iteration,
                                                                   TaskStatus.queued)
            self.accept(after, transition)
            self.drop_claim()

    @rule()
    def sweep_now(self) -> None:
        result = pipeline.expire_lease(self.task, now=self.now)
        if self.task.status == TaskStatus.in_progress and not self.lease_live():
            assert result is not None
            self.accept(*result)
            self.drop_claim()
        else:
            assert result is None

    # ---- the claimant's operations

    @rule(stage=st.one_of(st.none(), st.sampled_from(list(Stage))),
          lease=st.integers(min_value=10, max_value=300), agent=st.sampled_from(["a1", "a2", "a3"]))
    def claim(self, stage: Optional[Stage], lease: int, agent: str) -> None:
        stage = self.task.stage if stage is None else stage
        claim_id = next(self.claim_ids)
        call = lambda: pipeline.claim(self.task, stage=stage, agent_id=agent, claim_id=claim_id,  # noqa: E731
                                      now=self.now, lease_seconds=lease)
        claimable = self.task.stage == stage and (
            self.task.status == TaskStatus.queued
            or (self.task.status == TaskStatus.in_progress and not self.lease_live()))
        if not claimable:
            self.refuse(ConflictError, call)
            return
        before = self.task
        after, transition = call()
        assert (after.stage, after.iteration, after.status) == (before.stage, before.iteration,
                                                               TaskStatus.in_progress)
        assert (after.claim_id, after.claimed_by) == (claim_id, agent)
        assert after.lease_expires_at == clock.plus_seconds(self.now, lease)
        self.accept(after, transition)
        self.drop_claim()
        self.current_claim = claim_id

    @rule(lease=st.integers(min_value=10, max_value=300))
    def heartbeat(self, lease: int) -> None:
        claim_id = self.current_claim or "clm_none"
        call = lambda: pipeline.heartbeat(self.task, claim_id=claim_id, now=self.now,  # noqa: E731
                                          lease_seconds=lease)
        if not self.holds_lease():
            self.refuse(ConflictError, call)
            return
        before = self.task
        after = call()
        assert after.lease_expires_at == clock.plus_seconds(self.now, lease)
        assert {k: v for k, v in state(after).items() if k not in ("lease_expires_at", "version", "updated_at")} == \
            {k: v for k, v in state(before).items() if k not in ("lease_expires_at", "version", "updated_at")}
        self.accept(after, None)

    @rule(result=st.sampled_from([PASS, FAIL]))
    def advance(self, result: AdvanceResult) -> None:
        claim_id = self.current_claim or "clm_none"
        call = lambda: pipeline.advance(self.task, claim_id=claim_id, result=result,  # noqa: E731
                                        stages=self.stages, max_iterations=self.max_iterations, now=self.now)
        if not self.holds_lease():
            self.refuse(ConflictError, call)
            return
        before = self.task
        after, transition = call()
        assert after.claim_id is None and after.claimed_by is None and after.lease_expires_at is None
        if result == PASS:
            index = self.stages.index(before.stage)
            expected = self.stages[index + 1] if index + 1 < len(self.stages) else Stage.complete
            assert after.stage == expected and after.iteration == before.iteration
            assert after.status == (TaskStatus.done if expected == Stage.complete else TaskStatus.queued)
            self.passed.append(before.stage)
        elif before.iteration < self.max_iterations:
            assert (after.stage, after.status, after.iteration) == (self.stages[0], TaskStatus.queued,
                                                                   before.iteration + 1)
            self.segment_start, self.passed = 0, []
        else:
            assert (after.stage, after.status, after.iteration) == (before.stage, TaskStatus.failed,
                                                                   before.iteration)
        self.accept(after, transition)
        self.drop_claim()

    @precondition(lambda self: self.stale_claims or self.task.status == TaskStatus.in_progress)
    @rule(data=st.data(), operation=st.sampled_from(["heartbeat", "pass", "fail"]))
    def stale_write(self, data: st.DataObject, operation: str) -> None:
        """A write with a claim that no longer holds the task: an older claim id, or the current
        one once its lease ran out."""
        candidates = list(self.stale_claims) + ["clm_forged"]
        if self.current_claim is not None and not self.lease_live():
            candidates.append(self.current_claim)
        claim_id = data.draw(st.sampled_from(candidates), label="stale claim")
        if operation == "heartbeat":
            call = lambda: pipeline.heartbeat(self.task, claim_id=claim_id, now=self.now,  # noqa: E731
                                              lease_seconds=60)
        else:
            result = PASS if operation == "pass" else FAIL
            call = lambda: pipeline.advance(self.task, claim_id=claim_id, result=result,  # noqa: E731
                                            stages=self.stages, max_iterations=self.max_iterations, now=self.now)
        self.refuse(ConflictError, call)

    # ---- a person's operations

    @rule(stage=st.sampled_from(list(Stage)))
    def set_stage(self, stage: Stage) -> None:
        call = lambda: pipeline.set_stage(self.task, stage=stage, stages=self.stages, now=self.now)  # noqa: E731
        if stage not in self.stages and stage != Stage.complete:
            self.refuse(InvalidInputError, call)
            return
        if self.task.status == TaskStatus.cancelled:
            self.refuse(ConflictError, call)
            return
        before = self.task
        after, transition = call()
        assert after.stage == stage and after.iteration == before.iteration
        assert after.status == (TaskStatus.done if stage == Stage.complete else TaskStatus.queued)
        self.accept(after, transition)
        self.drop_claim()
        self.passed = []
        self.forced_complete = stage == Stage.complete
        self.segment_start = len(self.stages) if stage == Stage.complete else self.stages.index(stage)

    @rule(roll=st.integers(min_value=0, max_value=9))
    def cancel(self, roll: int) -> None:
        if roll:   # rarely: a cancelled task can no longer do anything interesting
            return
        result = pipeline.cancel(self.task, now=self.now)
        if self.task.is_terminal:
            assert result is None
            return
        assert result is not None
        after, transition = result
        assert after.status == TaskStatus.cancelled and after.stage == self.task.stage
        self.accept(after, transition)
        self.drop_claim()

    # ---- invariants

    @invariant()
    def exactly_one_stage_with_a_consistent_status(self) -> None:
        task = self.task
        assert task.stage in self.stages or task.stage == Stage.complete
        assert (task.stage == Stage.complete) == (task.status == TaskStatus.done)

    @invariant()
    def iteration_within_bounds(self) -> None:
        assert 1 <= self.task.iteration <= self.max_iterations

    @invariant()
    def claim_fields_only_while_in_progress(self) -> None:
        task = self.task
        leased = task.status == TaskStatus.in_progress
        assert (task.claim_id is not None) == leased
        assert (task.claimed_by is not None) == leased
        assert (task.lease_expires_at is not None) == leased
        assert (task.enqueued_at is not None) == (task.status == TaskStatus.queued)
        if leased:
            assert task.claim_id == self.current_claim

    @invariant()
    def complete_only_after_passing_every_stage_in_order(self) -> None:
        if self.task.stage == Stage.complete and not self.forced_complete:
            assert self.passed == self.stages[self.segment_start:]
        if self.task.stage != Stage.complete:
            assert self.passed == self.stages[self.segment_start:self.stages.index(self.task.stage)]

    @invariant()
    def version_counts_changes(self) -> None:
        assert self.task.version == self.version

    @invariant()
    def counters_agree_with_the_task(self) -> None:
        progress = progress_from_counters(self.counters)
        assert progress.total == 1
        assert {k: v for k, v in progress.by_stage.items() if v} == {self.task.stage.value: 1}
        assert {k: v for k, v in progress.by_status.items() if v} == {self.task.status.value: 1}


TestOneTask = OneTask.TestCase
TestOneTask.settings = settings(max_examples=200, stateful_step_count=40, deadline=None,
                                suppress_health_check=[HealthCheck.too_slow])


def test_role_sessions_are_relative_folders_and_leave_old_digests_alone():
    import json as _json

    from pydantic import ValidationError as _ValidationError

    from chalicelib.domain.enums import Role as _Role
    from chalicelib.domain.roles import RoleSpec, digest_of

    plain = RoleSpec.model_validate_json(_json.dumps({"prompt": "p", "command": "goose run"}))
    with_sessions = RoleSpec.model_validate_json(_json.dumps({
        "prompt": "p", "command": "goose run", "session_paths": [".local/share/goose/sessions"],
        "resume_command": "goose run --resume --name {session_id}"}))
    # The digest of a role without sessions (nor fallbacks) is computed as before the fields existed.
    before = {"role": "dev", **{k: v for k, v in plain.model_dump(mode="json").items()
                                if k not in ("session_paths", "resume_command", "fallback_executor",
                                             "fallback_agent_ids")}}
    import hashlib as _hashlib
    assert digest_of(_Role.dev, plain) == _hashlib.sha256(
        _json.dumps(before, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert digest_of(_Role.dev, with_sessions) != digest_of(_Role.dev, plain)
    for bad in (["/etc"], ["a/../b"], ["a//b"], [""], ["x" * 201], ["sp ace"]):
        with pytest.raises(_ValidationError):
            RoleSpec.model_validate_json(_json.dumps({"prompt": "p", "session_paths": bad}))
