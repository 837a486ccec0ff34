"""The director's actions on in-process moto, services called directly: each one transaction with
its audit event (rule and evidence), taken once however often the director runs on the same facts;
a paused task stays out of the queue until a person resumes it (a new stage by hand, or resolving
its attention item, which releases it in the same transaction); reassignment reserves the next job
for the role's fallback agents; the sweep finds idle queues, slow stages and budgets near their end
without a Scan. The director never changes a verdict."""

from __future__ import annotations

import json
from typing import Any, Optional

import pytest

from chalicelib.domain.director.model import supervision_of
from chalicelib.domain.requests import (AdvanceRequest, ClaimRequest, DirectorSettingsPatch, ProjectCreate, RunCreate,
                                        SetStageRequest)
from chalicelib.domain.roles import RoleSpec
from chalicelib.domain.usage import UsageReport
from tests.support.aws import backend_snapshot


def parsed(model: Any, **body: Any) -> Any:
    return model.model_validate_json(json.dumps(body))


class World:
    def __init__(self, services: Any, admin_key: str):
        self.services = services
        self.admin = services.keys.authenticate(f"Bearer {admin_key}")
        services.projects.create(self.admin, parsed(ProjectCreate, id="demo", name="Demo",
                                                    repository_url="https://example.com/demo.git"))

    def settings(self, **changes: Any) -> None:
        self.services.director.patch(self.admin, parsed(DirectorSettingsPatch, **changes))

    def role(self, role: str, **fields: Any) -> None:
        self.services.roles.put(self.admin, role, parsed(RoleSpec, prompt=f"{role} agent", required_proofs=[],
                                                         **fields))

    def run(self, tasks: int = 1, **fields: Any) -> Any:
        body = {"title": "r", "stages": ["qa"], "max_iterations": 6, "deploy_gate": False,
                "tasks": [{"title": f"t{i}"} for i in range(tasks)], **fields}
        return self.services.runs.start(self.admin, "demo", parsed(RunCreate, **body))

    def claim(self, stage: str = "qa", agent: str = "qa-1", lease: int = 900, **where: Any) -> Optional[Any]:
        got = self.services.tasks.claim(self.admin, parsed(ClaimRequest, stage=stage, agent_id=agent,
                                                           lease_seconds=lease, **(where or {"project_id": "demo"})))
        return got

    def fail(self, task_id: str, claim_id: str, tests: list[str], notes: str = "") -> Any:
        return self.services.tasks.advance(self.admin, task_id, parsed(
            AdvanceRequest, claim_id=claim_id, result="fail", notes=notes, failure={"failing_tests": tests}))

    def fail_again(self, tests: list[str], times: int, **where: Any) -> Any:
        task = None
        for _ in range(times):
            task, claim = self.claim(**where)
            task = self.fail(task.id, claim.claim_id, tests)
        return task

    def events(self, run_id: str, prefix: str = "director.") -> list[Any]:
        return [e for e in self.services.repos.audit.events_after(run_id, 0, 1000) if e.action.startswith(prefix)]

    def open_items(self) -> list[Any]:
        return self.services.attention.list(self.admin, "demo", "open", 100, None).items


@pytest.fixture
def world(services, admin_key) -> World:
    made = World(services, admin_key)
    made.role("qa")
    made.role("dev")
    return made


def test_the_same_failure_twice_nudges_the_next_job_and_three_times_escalates(world):
    run = world.run()
    once = world.fail_again(["tests/test_login.py::test_edge[3]"], 1)
    assert world.events(run.id) == [] and world.services.context.get(world.admin, once.id).director_notes == []
    task = world.fail_again(["tests/test_login.py::test_edge[4]"], 1)   # the same test, another parameter value
    (nudge,) = world.events(run.id)
    assert nudge.action == "director.nudge" and nudge.entity == f"task:{task.id}" and nudge.actor == "system:director"
    assert nudge.data["rule"] == "same_failure" and nudge.data["evidence"]["times"] == 2
    assert nudge.data["evidence"]["sample"] == "tests/test_login.py::test_edge[<n>]"
    notes = world.services.context.get(world.admin, task.id).director_notes
    assert [n.rule.value for n in notes] == ["same_failure"] and "test_edge" in notes[0].text
    # the fail's own event carries the fingerprint the director compared
    looped = [e for e in world.events(run.id, "task.looped_back")]
    assert looped[0].data["failure"]["fingerprint"] == looped[1].data["failure"]["fingerprint"]

    task = world.fail_again(["tests/test_login.py::test_edge[5]"], 1)
    actions = [e.action for e in world.events(run.id)]
    assert actions == ["director.nudge", "director.escalate"]
    (item,) = world.open_items()
    assert item.kind.value == "escalation" and item.task_id == task.id and item.run_id == run.id
    assert item.details["rule"] == "same_failure" and item.details["evidence"]["times"] == 3
    assert world.events(run.id)[-1].data["attention_id"] == item.id
    # the director never changes a verdict: the task looped back three times and is queued at qa, iteration 4
    current = world.services.repos.tasks.get(task.id)
    assert (current.stage.value, current.status.value, current.iteration, current.held) == ("qa", "queued", 4, None)


def test_running_the_director_again_on_the_same_facts_does_nothing_again(world, fake_clock):
    run = world.run()
    task = world.fail_again(["t::a"], 3)
    before = backend_snapshot(world.services)
    again = world.services.director.evaluate_task(world.services.repos.tasks.get(task.id))
    swept = world.services.sweeper.sweep_once()["director"]
    assert not again and not any(k.endswith(":taken") for k in swept)
    after = backend_snapshot(world.services)
    changed = [i for i in after if i not in before]
    # only the director's read position in the run's audit log moved (its watch of the run)
    assert {(i["pk"]["S"], i["sk"]["S"]) for i in changed} <= {(f"RUN#{run.id}", "DIRECTOR")}
    assert [e.action for e in world.events(run.id)] == ["director.nudge", "director.escalate"]


def test_an_escalation_over_the_projects_hourly_limit_writes_nothing(world):
    world.settings(max_escalations_per_project_per_hour=1)
    first, second = world.run(), world.run()
    world.fail_again(["t::a"], 3, run_id=first.id)
    assert [e.action for e in world.events(first.id)][-1] == "director.escalate"
    task = world.fail_again(["t::b"], 3, run_id=second.id)
    assert [e.action for e in world.events(second.id)] == ["director.nudge"]   # the escalation was refused whole
    assert len(world.open_items()) == 1
    supervision = supervision_of(world.services.repos.tasks.get(task.id))
    assert supervision.escalations == 0 and not any(k.endswith(":escalate") for k in supervision.done)


def test_a_paused_task_stays_out_of_the_queue_until_resolving_its_item_releases_it(world, fake_clock):
    world.settings(same_failure_pause_at=3)
    run = world.run()
    task = world.fail_again(["t::a"], 3)
    assert [e.action for e in world.events(run.id)] == ["director.nudge", "director.pause_task"]
    paused = world.services.repos.tasks.get(task.id)
    assert paused.held.value == "director" and paused.status.value == "queued"
    assert world.claim() is None and world.claim(task_id=task.id) is None and world.claim(run_id=run.id) is None
    fake_clock.set(7 * 86_400)
    world.services.sweeper.sweep_once()
    assert world.claim() is None                                   # no sweep puts it back
    (item,) = world.open_items()
    assert item.details["paused"] is True and item.task_id == task.id

    resolved = world.services.attention.resolve(world.admin, item.id, "looked at it: try again")
    assert resolved.status.value == "resolved"
    resumed = world.events(run.id, "task.resumed")
    assert len(resumed) == 1 and resumed[0].data["attention_id"] == item.id
    released = world.services.repos.tasks.get(task.id)
    assert released.held is None and supervision_of(released).paused is None
    claimed, _ = world.claim()
    assert claimed.id == task.id and claimed.iteration == 4
    from chalicelib.domain.errors import ConflictError
    with pytest.raises(ConflictError):
        world.services.attention.resolve(world.admin, item.id, "twice")
    assert len(world.events(run.id, "task.resumed")) == 1


def test_moving_a_paused_task_by_hand_resumes_it_and_resolves_its_item(world):
    world.settings(same_failure_pause_at=3)
    world.run()
    task = world.fail_again(["t::a"], 3)
    moved = world.services.tasks.set_stage(world.admin, task.id, parsed(SetStageRequest, stage="qa",
                                                                        reason="fixed the flaky fixture"))
    assert moved.held is None
    assert world.open_items() == []
    (item,) = world.services.attention.list(world.admin, "demo", "resolved", 10, None).items
    assert item.resolved_by == world.admin.actor and "fixed the flaky fixture" in item.comment
    assert world.claim()[0].id == task.id


def test_lease_churn_escalates_and_reserves_the_next_job_for_the_roles_fallback_agents(world, fake_clock):
    world.role("qa", fallback_agent_ids=["qa-human"])
    run = world.run()
    for n in range(2):
        fake_clock.set(n * 100)
        world.claim(lease=10)
        fake_clock.set(n * 100 + 11)
        assert world.services.sweeper.sweep_once()["requeued"] == 1
    actions = world.events(run.id)
    assert [e.action for e in actions] == ["director.reassign", "director.escalate"]
    assert actions[0].data["reassign_to"] == {"executor": None, "agent_ids": ["qa-human"]}
    assert actions[1].data["evidence"]["lease_expiries"] == 2
    assert world.claim(agent="qa-1") is None                        # reserved: another agent cannot take it
    task, _ = world.claim(agent="qa-human")
    assert task.iteration == 1 and task.stage.value == "qa"


def test_without_a_fallback_lease_churn_only_escalates(world, fake_clock):
    run = world.run()
    for n in range(2):
        fake_clock.set(n * 100)
        world.claim(lease=10)
        fake_clock.set(n * 100 + 11)
        world.services.sweeper.sweep_once()
    assert [e.action for e in world.events(run.id)] == ["director.escalate"]
    assert world.claim(agent="anyone") is not None


def test_an_idle_queue_is_reported_once_per_idle_spell(world, fake_clock):
    run = world.run(tasks=2)
    fake_clock.set(29 * 60)
    assert "idle_queue:taken" not in world.services.sweeper.sweep_once()["director"]
    fake_clock.set(31 * 60)
    assert world.services.sweeper.sweep_once()["director"]["idle_queue:taken"] == 1
    assert world.services.sweeper.sweep_once()["director"].get("idle_queue:taken") is None
    (item,) = world.open_items()
    assert item.kind.value == "idle_queue" and item.run_id == run.id and item.details["evidence"]["queued"] == 2
    assert [e.action for e in world.events(run.id)] == ["director.escalate"]
    # an agent comes by and takes a task: while it works at qa, the queue is not idle
    fake_clock.set(32 * 60)
    world.claim(agent="a")
    fake_clock.set(40 * 60)
    assert world.services.sweeper.sweep_once()["director"].get("idle_queue:taken") is None
    # it went away (its lease lapsed, the task is queued again) and nobody came for 30 minutes: a new spell
    fake_clock.set(63 * 60)
    assert world.services.sweeper.sweep_once()["director"]["idle_queue:taken"] == 1


def test_a_claim_that_wins_its_first_candidate_records_no_attempt(world):
    world.run()
    before = backend_snapshot(world.services)
    world.claim()
    assert not [i for i in backend_snapshot(world.services) if i["sk"]["S"].startswith("QUEUE#") and i not in before]
    world.claim(stage="docs")
    assert world.services.repos.director.queue("demo", "docs").last_attempt_at is not None


def test_a_stage_far_slower_than_its_peers_is_noted_then_escalated(world, fake_clock):
    world.settings(slow_stage_min_peers=2, slow_stage_min_seconds=60)
    run = world.run(tasks=3)
    claims = [world.claim() for _ in range(3)]
    fake_clock.set(100)
    for task, claim in claims[:2]:
        world.services.tasks.advance(world.admin, task.id, parsed(AdvanceRequest, claim_id=claim.claim_id,
                                                                   result="pass"))
    slow = claims[2][0]
    fake_clock.set(250)
    assert "nudge:taken" not in world.services.sweeper.sweep_once()["director"]    # 2.5× the median
    fake_clock.set(301)
    assert world.services.sweeper.sweep_once()["director"]["nudge:taken"] == 1
    fake_clock.set(601)
    assert world.services.sweeper.sweep_once()["director"]["escalate:taken"] == 1
    actions = world.events(run.id)
    assert [(e.action, e.data["rule"], e.entity) for e in actions] == [
        ("director.nudge", "slow_stage", f"task:{slow.id}"), ("director.escalate", "slow_stage", f"task:{slow.id}")]
    assert actions[1].data["evidence"]["peers_median_seconds"] == 100
    assert world.services.repos.tasks.get(slow.id).status.value == "in_progress"   # nothing interrupted


def test_a_budget_near_its_end_is_escalated_once(world):
    run = world.run(ceilings={"max_cost_usd": 10})
    task, claim = world.claim()
    world.services.usage.report(world.admin.model_copy(update={"claim_id": claim.claim_id}), task.id,
                                parsed(UsageReport, tokens_in=10, tokens_out=10, cost_usd=9.2))
    assert world.services.sweeper.sweep_once()["director"]["budget:taken"] == 1
    assert world.services.sweeper.sweep_once()["director"].get("budget:taken") is None
    (item,) = world.open_items()
    assert item.details["rule"] == "budget_near_end" and item.task_id is None
    assert item.details["evidence"]["used_fraction"] == 0.92
    assert [e.action for e in world.events(run.id)] == ["director.escalate"]


def test_the_director_can_be_switched_off(world):
    world.settings(director_enabled=False)
    run = world.run()
    world.fail_again(["t::a"], 3)
    assert world.services.sweeper.sweep_once()["director"] == {}
    assert world.events(run.id) == [] and world.open_items() == []
