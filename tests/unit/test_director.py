"""The director's rules, pure: each detector fires exactly when its rule holds (and not one short of
it), never twice for the same facts, and escalations stay inside their rate limits. Also the failure
fingerprints (what makes two failures the same) and the facts the director keeps."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain import clock
from chalicelib.domain.director.facts import (after_action, after_failure, after_lease_loss, executor_for, failed_stage,
                                              fold_events, resumed)
from chalicelib.domain.director.fingerprints import error_line, failing_tests_in_junit, failure_of, normalise
from chalicelib.domain.director.model import (ActionKind, FailureRecord, LeaseLosses, Reassignment, Rule, Supervision,
                                              supervision_of)
from chalicelib.domain.director.watches import RunWatch
from chalicelib.domain.director.rules import (BudgetFacts, QueueFacts, TaskFacts, apply_policy, budget_near_end,
                                              escalation_window, failure_streak, idle_queue, in_cooldown, lease_churn,
                                              near_max_iterations, project_has_room, same_failure, slow_stage,
                                              task_rules)
from chalicelib.domain.entities import DirectorSettings, Task
from chalicelib.domain.enums import Stage, TaskStatus

NOW = "2030-06-01T12:00:00.000000Z"
DEFAULTS = DirectorSettings()


def minutes_ago(minutes: float) -> str:
    return clock.plus_seconds(NOW, -60 * minutes)


def a_task(**fields: Any) -> Task:
    base = {"id": "task_01", "run_id": "run_01", "project_id": "demo", "title": "t", "stage": Stage.dev,
            "status": TaskStatus.queued, "iteration": 1, "created_at": NOW, "updated_at": NOW}
    if isinstance(fields.get("supervision"), Supervision):
        fields["supervision"] = fields["supervision"].stored()   # as the task keeps it
    return Task(**{**base, **fields})


def failures(*fingerprints: Any, stage: str = "qa", first_iteration: int = 1) -> list[FailureRecord]:
    return [FailureRecord(stage=stage, iteration=first_iteration + i, fingerprint=fp, source="tests" if fp else None,
                          sample=f"tests::{fp}" if fp else "", at=NOW) for i, fp in enumerate(fingerprints)]


def facts(*, status: str = "queued", stage: str = "dev", iteration: int = 2, max_iterations: int = 5,
          supervision: Supervision = Supervision(), fallback: Any = None) -> TaskFacts:
    return TaskFacts(task_id="task_01", run_id="run_01", project_id="demo", stage=stage, status=status,
                     iteration=iteration, max_iterations=max_iterations, supervision=supervision, fallback=fallback)


def kinds(actions) -> list[tuple[str, str]]:
    return [(a.kind.value, a.rule.value) for a in actions]


# ---- fingerprints: what makes two failures the same


def test_normalise_drops_what_varies_between_two_runs_of_one_failure():
    first = normalise("2030-06-01T12:00:01.5Z /tmp/baton-task_01ABCDEFGHJK/repo/tests/test_a.py:12: "
                      "AssertionError: 3 != 4 at 0x7f3a9c (id 9f86d081884c7d65, run_01ABCDEFGHJKMNPQ)")
    second = normalise("2031-01-02 08:09:10 /var/tmp/other/work/tests/test_a.py:57: "
                       "AssertionError: 30 != 41 at 0x55aa (id 0e1f2d3c4b5a6978, run_01ZZZZZZZZZZZZZZ)")
    assert first == second
    assert "test_a.py:<n>" in first and "/tmp" not in first and "<hex>" in first and "<id>" in first
    assert normalise("tests/unit/test_x.py::test_case_2[3-4]") == "tests/unit/test_x.py::test_case_2[<n>-<n>]"
    assert normalise("  a \n\t b  ") == "a b"
    assert normalise("defaced accepted") == "defaced accepted"   # words are not hex ids


def test_failing_tests_are_read_from_junit_without_an_xml_parser():
    junit = """<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="5">
      <testcase classname="tests.test_login" name="test_edge" time="0.1"><failure message="boom">x</failure></testcase>
      <testcase classname='tests.test_login' name='test_ok' time='0.2'/>
      <testcase classname="tests.test_api" name="test_&quot;quoted&quot;"><error message="e"/></testcase>
      <testcase name="test_skipped"><skipped/></testcase>
      <testcase name="test_bare"><failure/></testcase>
    </testsuite></testsuites>"""
    assert failing_tests_in_junit(junit) == ["tests.test_login::test_edge", 'tests.test_api::test_"quoted"',
                                             "test_bare"]
    assert failing_tests_in_junit("<testsuite><testcase name='a'/></testsuite>") == []
    assert failing_tests_in_junit("not xml at all <testcase") == []


def test_the_error_line_is_the_last_line_that_names_an_error():
    assert error_line("collecting\nTraceback (most recent call last):\nValueError: bad\n\ndone\n") == "ValueError: bad"
    assert error_line("step one\nstep two\n") == "step two"
    assert error_line("") == ""


def test_a_failure_is_known_by_its_tests_then_its_findings_then_its_error():
    by_tests = failure_of(failing_tests=["t::b", "t::a", "t::a"], finding_keys=["k1"], error="Error: x")
    assert by_tests.source == "tests" and by_tests.sample == "t::a, t::b"
    assert by_tests == failure_of(failing_tests=["t::a", "t::b"])                      # order, repeats: same
    assert by_tests != failure_of(failing_tests=["t::a"])
    by_findings = failure_of(finding_keys=["B105@app.py"], error="Error: x")
    assert by_findings.source == "findings" and by_findings.fingerprint != by_tests.fingerprint
    by_error = failure_of(error="log\nError: timeout after 31s\n")
    assert by_error.source == "error" and by_error == failure_of(error="Error: timeout after 2s")
    assert failure_of() is None and failure_of(error="  \n") is None and failure_of(failing_tests=[" "]) is None


# ---- same failure in N consecutive iterations


def test_the_same_failure_nudges_at_two_escalates_at_three_and_not_one_short():
    assert same_failure(facts(supervision=Supervision(failures=failures("A"))), DEFAULTS, NOW) == []
    two = same_failure(facts(supervision=Supervision(failures=failures("A", "A"))), DEFAULTS, NOW)
    assert kinds(two) == [("nudge", "same_failure")]
    assert two[0].evidence["times"] == 2 and two[0].evidence["iterations"] == [1, 2]
    assert "t" in two[0].message and two[0].task_id == "task_01"
    three = same_failure(facts(iteration=4, supervision=Supervision(failures=failures("A", "A", "A"))), DEFAULTS, NOW)
    assert kinds(three) == [("escalate", "same_failure"), ("nudge", "same_failure")]


def test_the_same_failure_is_acted_on_once_per_key():
    history = failures("A", "A", "A")
    first = same_failure(facts(supervision=Supervision(failures=history)), DEFAULTS, NOW)
    done = Supervision(failures=history, done={a.key: NOW for a in first})
    assert same_failure(facts(supervision=done), DEFAULTS, NOW) == []
    # a fourth identical failure keeps the streak (same first iteration): nothing new
    longer = Supervision(failures=failures("A", "A", "A", "A"), done=done.done)
    assert same_failure(facts(supervision=longer), DEFAULTS, NOW) == []


def test_a_streak_is_broken_by_another_failure_a_gap_or_a_failure_without_fingerprint():
    assert failure_streak(failures("A", "B", "A")) == failures("A", "B", "A")[2:]
    assert failure_streak(failures("A", None, "A"))[0].iteration == 3
    assert failure_streak(failures("A", "A", None)) == []
    gap = failures("A") + failures("A", first_iteration=3)
    assert len(failure_streak(gap)) == 1
    same_iteration = failures("A") + failures("A", stage="sec")   # set back by hand, failed again
    assert len(failure_streak(same_iteration)) == 2
    for history in (failures("A", "B"), failures("A", None, "A")):
        assert same_failure(facts(supervision=Supervision(failures=history)), DEFAULTS, NOW) == []


def test_the_same_failure_pauses_only_when_set_and_a_failed_task_is_only_escalated():
    history = Supervision(failures=failures("A", "A", "A", "A"))
    assert "pause_task" not in [k for k, _ in kinds(same_failure(facts(supervision=history), DEFAULTS, NOW))]
    pausing = DEFAULTS.model_copy(update={"same_failure_pause_at": 4})
    assert kinds(same_failure(facts(supervision=history), pausing, NOW)) == [("pause_task", "same_failure")]
    three = Supervision(failures=failures("A", "A", "A"))
    assert kinds(same_failure(facts(supervision=three), pausing, NOW)) == [("escalate", "same_failure"),
                                                                           ("nudge", "same_failure")]
    assert kinds(same_failure(facts(status="failed", supervision=history), pausing, NOW)) == [
        ("escalate", "same_failure")]
    assert same_failure(facts(status="done", supervision=history), pausing, NOW) == []
    off = DEFAULTS.model_copy(update={"same_failure_nudge_at": 0, "same_failure_escalate_at": 0})
    assert same_failure(facts(supervision=three), off, NOW) == []


# ---- one loop-back from max_iterations


def test_the_last_iteration_gets_a_nudge_once():
    last = Supervision(failures=failures("A", "B"))
    assert near_max_iterations(facts(iteration=2, max_iterations=3, supervision=last), DEFAULTS, NOW) == []
    nudged = near_max_iterations(facts(iteration=3, max_iterations=3, supervision=last), DEFAULTS, NOW)
    assert kinds(nudged) == [("nudge", "near_max_iterations")]
    assert nudged[0].evidence == {"iteration": 3, "max_iterations": 3, "last_failure": "tests::B",
                                  "last_failed_stage": "qa"}
    done = last.model_copy(update={"done": {nudged[0].key: NOW}})
    assert near_max_iterations(facts(iteration=3, max_iterations=3, supervision=done), DEFAULTS, NOW) == []
    assert near_max_iterations(facts(iteration=1, max_iterations=1), DEFAULTS, NOW) == []
    assert near_max_iterations(facts(status="failed", iteration=3, max_iterations=3), DEFAULTS, NOW) == []
    off = DEFAULTS.model_copy(update={"near_max_iterations_nudge": False})
    assert near_max_iterations(facts(iteration=3, max_iterations=3), off, NOW) == []


# ---- lease churn


def churned(count: int, stage: str = "qa", iteration: int = 2) -> Supervision:
    return Supervision(lease_losses=LeaseLosses(stage=stage, iteration=iteration, count=count))


def test_lease_churn_escalates_at_k_and_not_one_short():
    assert lease_churn(facts(stage="qa", supervision=churned(1)), DEFAULTS, NOW) == []
    escalated = lease_churn(facts(stage="qa", supervision=churned(2)), DEFAULTS, NOW)
    assert kinds(escalated) == [("escalate", "lease_churn")]
    assert escalated[0].evidence == {"stage": "qa", "iteration": 2, "lease_expiries": 2, "threshold": 2}
    assert lease_churn(facts(stage="qa", supervision=churned(2, iteration=1)), DEFAULTS, NOW) == []   # old job's
    assert lease_churn(facts(stage="dev", supervision=churned(2)), DEFAULTS, NOW) == []
    done = churned(3).model_copy(update={"done": {escalated[0].key: NOW}})
    assert lease_churn(facts(stage="qa", supervision=done), DEFAULTS, NOW) == []


def test_lease_churn_reassigns_only_where_the_role_allows_it():
    target = Reassignment(stage="qa", iteration=2, executor="external", agent_ids=["human-qa"])
    both = lease_churn(facts(stage="qa", supervision=churned(2), fallback=target), DEFAULTS, NOW)
    assert kinds(both) == [("reassign", "lease_churn"), ("escalate", "lease_churn")]
    assert both[0].reassign_to.executor == "external" and both[0].reassign_to.agent_ids == ["human-qa"]
    assert both[0].reassign_to.rule == Rule.lease_churn and "reassigned" in both[1].message
    no_reassign = DEFAULTS.model_copy(update={"reassign_on_lease_churn": False})
    assert kinds(lease_churn(facts(stage="qa", supervision=churned(2), fallback=target), no_reassign, NOW)) == [
        ("escalate", "lease_churn")]
    ended = lease_churn(facts(stage="qa", status="failed", supervision=churned(3), fallback=target), DEFAULTS, NOW)
    assert kinds(ended) == [("escalate", "lease_churn")]


# ---- idle queue


def queue(**fields: Any) -> QueueFacts:
    base = {"project_id": "demo", "stage": "qa", "external": True, "queued": 3, "oldest_task_id": "task_01",
            "oldest_run_id": "run_01", "oldest_enqueued_at": minutes_ago(45), "last_attempt_at": minutes_ago(40)}
    return QueueFacts(**{**base, **fields})


def test_an_idle_queue_is_reported_after_x_minutes_without_an_attempt_and_not_one_short():
    reported = idle_queue(queue(), DEFAULTS, NOW)
    assert kinds(reported) == [("escalate", "idle_queue")] and reported[0].attention_kind.value == "idle_queue"
    assert reported[0].evidence["waited_minutes"] == 45 and reported[0].run_id == "run_01"
    assert idle_queue(queue(last_attempt_at=minutes_ago(29)), DEFAULTS, NOW) == []       # someone tried lately
    assert idle_queue(queue(oldest_enqueued_at=minutes_ago(29), last_attempt_at=None), DEFAULTS, NOW) == []
    assert len(idle_queue(queue(oldest_enqueued_at=minutes_ago(30), last_attempt_at=None), DEFAULTS, NOW)) == 1
    assert idle_queue(queue(external=False), DEFAULTS, NOW) == []                         # Baton launches those
    assert idle_queue(queue(), DEFAULTS.model_copy(update={"idle_queue_minutes": 0}), NOW) == []


def test_an_idle_queue_is_reported_once_per_idle_spell():
    assert idle_queue(queue(idle_reported_at=minutes_ago(10)), DEFAULTS, NOW) == []
    # an attempt came after the report, then the queue went idle again: a new spell
    again = queue(last_attempt_at=minutes_ago(35), idle_reported_at=minutes_ago(38), oldest_enqueued_at=minutes_ago(90))
    assert len(idle_queue(again, DEFAULTS, NOW)) == 1
    # newer work than the report (the old tasks were taken): a new spell
    newer = queue(last_attempt_at=None, idle_reported_at=minutes_ago(100), oldest_enqueued_at=minutes_ago(60))
    assert len(idle_queue(newer, DEFAULTS, NOW)) == 1


# ---- slow stage


def test_a_stage_three_times_slower_than_its_peers_gets_a_nudge_six_times_an_escalation():
    in_progress = facts(status="in_progress", stage="qa")
    peers = [100.0, 120.0, 110.0]                       # median 110 s
    settings = DEFAULTS.model_copy(update={"slow_stage_min_seconds": 60})
    assert slow_stage(in_progress, clock.plus_seconds(NOW, -330), peers, settings, NOW) == []        # 3.0×: not >
    nudged = slow_stage(in_progress, clock.plus_seconds(NOW, -331), peers, settings, NOW)
    assert kinds(nudged) == [("nudge", "slow_stage")] and nudged[0].evidence["peers_median_seconds"] == 110
    both = slow_stage(in_progress, clock.plus_seconds(NOW, -700), peers, settings, NOW)
    assert kinds(both) == [("escalate", "slow_stage"), ("nudge", "slow_stage")]
    assert slow_stage(in_progress, clock.plus_seconds(NOW, -700), peers[:2], settings, NOW) == []   # too few peers
    fast_peers = [40.0, 50.0, 60.0]
    assert slow_stage(in_progress, clock.plus_seconds(NOW, -299), fast_peers, DEFAULTS, NOW) == []  # 6×, under 5 min
    assert len(slow_stage(in_progress, clock.plus_seconds(NOW, -301), fast_peers, DEFAULTS, NOW)) == 2
    assert slow_stage(facts(status="queued"), clock.plus_seconds(NOW, -700), peers, settings, NOW) == []
    done = facts(status="in_progress", stage="qa",
                 supervision=Supervision(done={a.key: NOW for a in both}))
    assert slow_stage(done, clock.plus_seconds(NOW, -700), peers, settings, NOW) == []


# ---- budget near its end


def budget(fraction: float, **fields: Any) -> BudgetFacts:
    return BudgetFacts(**{"project_id": "demo", "run_id": "run_01", "used_fraction": fraction, "max_cost_usd": 10.0,
                          "max_tokens": None, **fields})


def test_a_budget_at_ninety_percent_is_escalated_once_per_budget():
    assert budget_near_end(budget(0.8999), DEFAULTS, NOW) == []
    escalated = budget_near_end(budget(0.9), DEFAULTS, NOW)
    assert kinds(escalated) == [("escalate", "budget_near_end")] and escalated[0].task_id is None
    assert budget_near_end(budget(0.95, escalated_for=budget(0.95).signature), DEFAULTS, NOW) == []
    raised = budget(0.92, max_cost_usd=20.0, escalated_for=budget(0.95).signature)
    assert len(budget_near_end(raised, DEFAULTS, NOW)) == 1                          # a raised budget: again
    assert budget_near_end(budget(1.0), DEFAULTS, NOW) == []                          # the budget gate asks then
    assert budget_near_end(budget(0.95, max_cost_usd=None), DEFAULTS, NOW) == []      # no budget


# ---- the policy: rate limits, pauses


def test_an_escalated_task_gets_no_new_escalation_inside_the_cooldown():
    history = Supervision(failures=failures("A", "A", "A"), lease_losses=LeaseLosses(stage="dev", iteration=2, count=2))
    proposed = [*same_failure(facts(supervision=history), DEFAULTS, NOW), *lease_churn(facts(supervision=history),
                                                                                       DEFAULTS, NOW)]
    first = apply_policy(proposed, facts(supervision=history), DEFAULTS, NOW)
    assert [(a.kind, a.rule) for a in first] == [(ActionKind.escalate, Rule.same_failure),
                                                 (ActionKind.nudge, Rule.same_failure)]   # one escalation at a time
    no_cooldown = DEFAULTS.model_copy(update={"escalation_cooldown_minutes": 0})
    assert [a.kind for a in apply_policy(proposed, facts(supervision=history), no_cooldown, NOW)].count(
        ActionKind.escalate) == 2
    escalated = after_action(history, proposed[0], minutes_ago(59), iteration=2)
    assert in_cooldown(escalated, DEFAULTS, NOW)
    within = apply_policy(proposed, facts(supervision=escalated), DEFAULTS, NOW)
    assert [a.kind for a in within] == [ActionKind.nudge]                 # the nudge still goes
    later = after_action(history, proposed[0], minutes_ago(61), iteration=2)
    assert not in_cooldown(later, DEFAULTS, NOW)
    assert ActionKind.escalate in [a.kind for a in apply_policy(proposed, facts(supervision=later), DEFAULTS, NOW)]
    assert project_has_room(9, DEFAULTS) and not project_has_room(10, DEFAULTS)
    assert project_has_room(10 ** 6, DEFAULTS.model_copy(update={"max_escalations_per_project_per_hour": 0}))
    assert escalation_window(NOW) == "2030-06-01T12"


def test_pause_on_escalation_pauses_open_tasks_only():
    history = Supervision(failures=failures("A", "A", "A"))
    pausing = DEFAULTS.model_copy(update={"pause_on_escalation": True})
    assert kinds(task_rules(facts(supervision=history), pausing, NOW)) == [("pause_task", "same_failure"),
                                                                          ("nudge", "same_failure")]
    assert kinds(task_rules(facts(status="failed", supervision=history), pausing, NOW)) == [
        ("escalate", "same_failure")]
    assert task_rules(facts(supervision=history), DEFAULTS.model_copy(update={"director_enabled": False}), NOW) == []


# ---- what the director records


def test_a_failed_advance_records_its_fingerprint_and_findings_count_only_in_their_iteration():
    task = a_task(stage=Stage.qa, iteration=2, failing_findings={"stage": "qa", "iteration": 2, "keys": ["B105@a.py"]})
    after, data = failed_stage(task, task.model_copy(update={"stage": Stage.dev, "iteration": 3}), failing_tests=[],
                               error="", now=NOW)
    assert data["failure"]["source"] == "findings" and after.failing_findings is None
    recorded = supervision_of(after).failures[-1]
    assert recorded.iteration == 2 and recorded.stage == "qa"
    stale = task.model_copy(update={"failing_findings": {"stage": "qa", "iteration": 1, "keys": ["B105@a.py"]}})
    supervision, failure = after_failure(stale, error="AssertionError: 1 != 2", now=NOW)
    assert failure.source == "error" and supervision.failures[-1].fingerprint == failure.fingerprint
    nothing, none = after_failure(a_task(), now=NOW)
    assert none is None and nothing.failures[-1].fingerprint is None
    many = a_task(supervision=Supervision(failures=failures(*"ABCDEFGHIJKLMNO")))
    assert len(after_failure(many, error="x", now=NOW)[0].failures) == 12


def test_lease_losses_count_per_stage_and_iteration():
    once = after_lease_loss(a_task(stage=Stage.qa, iteration=2))
    assert once.lease_losses == LeaseLosses(stage="qa", iteration=2, count=1)
    twice = after_lease_loss(a_task(stage=Stage.qa, iteration=2, supervision=once))
    assert twice.lease_losses.count == 2
    assert after_lease_loss(a_task(stage=Stage.qa, iteration=3, supervision=twice)).lease_losses.count == 1


def test_an_action_leaves_its_key_a_note_a_pause_or_a_target():
    history = Supervision(failures=failures("A", "A"))
    nudge = same_failure(facts(supervision=history), DEFAULTS, NOW)[0]
    noted = after_action(history, nudge, NOW, iteration=3)
    assert nudge.key in noted.done and noted.notes[-1].text == nudge.message and noted.notes[-1].iteration == 3
    assert noted.escalations == 0 and noted.last_escalated_at is None
    target = Reassignment(stage="dev", iteration=2, executor="external")
    reassign = lease_churn(facts(supervision=churned(2, stage="dev"), fallback=target, stage="dev"), DEFAULTS, NOW)[0]
    moved = after_action(Supervision(), reassign, NOW, iteration=2)
    assert moved.reassigned.executor == "external"
    assert executor_for(a_task(iteration=2, supervision=moved), "container") == "external"
    assert executor_for(a_task(iteration=3, supervision=moved), "container") == "container"   # the next job only
    assert resumed(Supervision(paused=None)) == Supervision()
    crowded = Supervision(done={f"k{i}": minutes_ago(i) for i in range(80)})
    assert len(after_action(crowded, nudge, NOW, iteration=1).done) == 60


def event(seq: int, action: str, task: str, at_minute: float, **data: Any) -> dict[str, Any]:
    return {"seq": seq, "action": action, "entity": f"task:{task}", "at": minutes_ago(at_minute), "data": data}


def test_the_audit_log_gives_jobs_in_flight_and_the_durations_of_finished_ones():
    events = [event(1, "task.claimed", "t1", 10, to_stage="qa", iteration=1),
              event(2, "task.claimed", "t2", 9, to_stage="qa", iteration=1),
              event(3, "task.passed", "t1", 8, from_stage="qa"),
              event(4, "job.dispatched", "t3", 7, stage="dev", iteration=1, lease_expires_at=NOW),
              event(5, "job.dispatched", "t4", 7, stage="dev", iteration=1),          # external: queued, not started
              event(6, "task.looped_back", "t2", 6, from_stage="qa"),
              event(7, "job.lease_expired", "t3", 5, from_stage="dev"),
              {"seq": 8, "action": "run.started", "entity": "run:r", "at": NOW, "data": {}}]
    watch, touched, claims = fold_events(RunWatch(), events)
    assert watch.seen_seq == 8 and watch.started == {}
    assert watch.durations == {"qa": [120.0, 180.0]}
    assert touched == {"t2", "t3"} and claims == {"qa": minutes_ago(9)}
    again, nothing, claims = fold_events(watch, [event(9, "task.claimed", "t5", 1, to_stage="docs", iteration=2)])
    assert again.started["t5"].stage == "docs" and again.durations == watch.durations and not nothing
    assert claims == {"docs": minutes_ago(1)}


@pytest.mark.parametrize("field,value", [("same_failure_nudge_at", 2), ("same_failure_escalate_at", 3),
                                         ("same_failure_pause_at", 0), ("lease_churn_escalate_at", 2),
                                         ("idle_queue_minutes", 30), ("slow_stage_factor", 3.0),
                                         ("budget_escalate_fraction", 0.9), ("escalation_cooldown_minutes", 60),
                                         ("pause_on_escalation", False)])
def test_the_defaults_are_the_documented_policy(field: str, value: Any):
    assert getattr(DirectorSettings(), field) == value


# ---- the runner's side: notes into the prompt, what a failure failed on


def context_with(notes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"task": {"id": "task_01", "title": "t", "stage": "dev", "iteration": 3, "source": "manual"},
            "run": {"title": "r"}, "project": {"name": "p", "repository_url": "u"}, "role": {"role": "dev"},
            "handoffs": [], "proofs": [], "director_notes": notes}


def test_the_directors_notes_follow_the_prompt_unless_it_places_them(tmp_path):
    from chalicelib.agent.work import prompt_text

    note = {"rule": "same_failure", "stage": "qa", "iteration": 3, "text": "The same failure came back twice."}
    plain = prompt_text("Work on {task_title}.", context_with([note]), tmp_path)
    assert plain.startswith("Work on t.") and "Notes from Baton's director" in plain
    assert "- [same_failure, qa iteration 3] The same failure came back twice." in plain
    placed = prompt_text("Notes: {director_notes}\nWork.", context_with([note]), tmp_path)
    assert placed.count("The same failure came back twice.") == 1 and "Notes from Baton's director" not in placed
    assert prompt_text("Work on {task_title}.", context_with([]), tmp_path) == "Work on t."
    assert prompt_text("N: {director_notes}", context_with([]), tmp_path) == "N: (none)"


def test_the_runner_reports_the_failing_tests_of_its_junit_files_and_the_error_line(tmp_path):
    from chalicelib.agent.work import failure_report

    proofs = tmp_path / "proofs"
    (proofs / "sub").mkdir(parents=True)
    (proofs / "junit.xml").write_text('<testsuite><testcase classname="t" name="a"><failure/></testcase></testsuite>')
    (proofs / "sub" / "more.xml").write_text('<testsuite><testcase name="b"><error/></testcase></testsuite>')
    (proofs / "other.xml").write_text('<config><testcase name="not-junit"><failure/></testcase></config>')
    output = tmp_path / "agent-output.log"
    output.write_text("running\nE   AssertionError: 1 != 2\nsummary: done\n")
    assert failure_report(proofs, output) == {"failing_tests": ["t::a", "b"], "error": "E   AssertionError: 1 != 2"}
    assert failure_report(tmp_path / "none", tmp_path / "missing.log") == {"failing_tests": [], "error": ""}


def test_the_director_reads_nothing_for_a_first_failure_of_an_early_iteration():
    from chalicelib.domain.director.rules import may_fire

    assert not may_fire(a_task(iteration=2, supervision=Supervision(failures=failures("A"))), 3)
    assert not may_fire(a_task(iteration=3, supervision=Supervision(failures=failures("A", "B"))), 4)
    assert may_fire(a_task(iteration=3, supervision=Supervision(failures=failures("A", "A"))), 5)   # a streak
    assert may_fire(a_task(iteration=3), 3)                                                          # last iteration
    assert not may_fire(a_task(iteration=1), 1)
    assert may_fire(a_task(supervision=churned(1, stage="dev", iteration=1)), 3)                    # a lost lease
