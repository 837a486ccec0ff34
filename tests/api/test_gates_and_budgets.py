"""Canary, budget and rollback through the API (contract v1.1), without Step Functions: tasks are
claimable as soon as they may start, so every rule is seen in what an agent can claim.

* A canary run starts only its subset; the rest is held (no agent can claim it) until a person
  approves the canary gate, which is asked with a summary once the canary tasks ended. Reject
  cancels the rest and fails the run; a deadline applies ``on_timeout``.
* Usage reports roll up per run, stage, role, agent and model; at 80 % of a budget a warning, at
  100 % the budget gate: nothing new is claimed until a person raises the budget (or rejects).
* A release records its commits; a rollback task carries them and the run ends ``rolled_back``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from chalicelib.domain import clock
from tests.support.api import relax_roles, start_run
from tests.support.aws import table_snapshot
from tests.support.round_trips import dynamodb_operations


@pytest.fixture
def people(api, project) -> dict[str, Any]:
    relax_roles(api)
    made = {}
    for name, kind in (("lead", "human"), ("agent", "agent")):
        created = api.post("/keys", {"name": name, "principal": kind, "project_ids": ["demo"]})
        assert created.status_code == 201, created.data
        made[name] = api.as_key(created.data["key"])
    return made


def claim(agent, run_id: str, stage: str = "dev") -> Any:
    response = agent.post("/queue/claim", {"stage": stage, "agent_id": "worker", "run_id": run_id})
    assert response.status_code in (200, 204), response.data
    return response.data if response.status_code == 200 else None


def work_all(agent, run_id: str, *, result: str = "pass", usage: Any = None, limit: int = 100) -> list[str]:
    """Claim and advance whatever is claimable at dev until nothing is; returns the task ids."""
    done = []
    for _ in range(limit):
        got = claim(agent, run_id)
        if got is None:
            return done
        body = {"claim_id": got["claim"]["claim_id"], "result": result}
        if usage is not None:
            body["usage"] = usage
        moved = agent.post(f"/tasks/{got['task']['id']}/advance", body)
        assert moved.status_code == 200, moved.data
        done.append(got["task"]["id"])
    raise AssertionError("more work than expected")


def events(api, run_id: str) -> list[dict[str, Any]]:
    return api.get(f"/runs/{run_id}/events?limit=200").data["items"]


def tasks_of(api, run_id: str) -> list[dict[str, Any]]:
    return api.get(f"/runs/{run_id}/tasks?limit=200").data["items"]


def gate(api, run_id: str, name: str) -> dict[str, Any]:
    return next(g for g in api.get(f"/runs/{run_id}/approvals").data["items"] if g["gate"] == name)


# ---- canary


def test_a_canary_run_starts_only_its_subset_and_the_rest_after_approval(api, people):
    run = start_run(api, tasks=10, stages=["dev"], deploy_gate=False, canary={"fraction": 0.2})
    tasks = tasks_of(api, run["id"])
    canary_ids = {t["id"] for t in tasks if t["canary"]}
    assert len(canary_ids) == 2
    assert {t["held"] for t in tasks if not t["canary"]} == {"canary"}
    # Anyone recomputes the subset from the salt recorded on the run and in its event.
    selected = next(e for e in events(api, run["id"]) if e["action"] == "run.canary_selected")["data"]
    assert selected["salt"] == api.get(f"/runs/{run['id']}").data["canary_salt"]
    scores = sorted(tasks, key=lambda t: hashlib.sha256(f"{selected['salt']}:{t['id']}".encode()).hexdigest())
    assert {t["id"] for t in scores[:2]} == canary_ids == set(selected["selected"])

    worked = work_all(people["agent"], run["id"])
    assert set(worked) == canary_ids   # nothing else could be claimed
    waiting = api.get(f"/runs/{run['id']}").data
    assert (waiting["status"], waiting["gate"], waiting["canary_state"]) == ("awaiting_approval", "canary", "gate")
    asked = gate(api, run["id"], "canary")
    assert asked["status"] == "pending"
    assert {k: asked["summary"][k] for k in ("tasks", "passed", "failed", "loop_backs", "exceeded")} == \
        {"tasks": 2, "passed": 2, "failed": 0, "loop_backs": 0, "exceeded": False}
    assert claim(people["agent"], run["id"]) is None

    decided = people["lead"].post(f"/runs/{run['id']}/approvals/canary", {"decision": "approve", "comment": "ok"})
    assert decided.status_code == 200, decided.data
    assert decided.data["status"] == "approved"
    rest = work_all(people["agent"], run["id"])
    assert len(rest) == 8 and not set(rest) & canary_ids
    ended = api.get(f"/runs/{run['id']}").data
    assert ended["status"] == "succeeded" and ended["canary_state"] == "approved" and ended.get("gate") is None
    actions = [e["action"] for e in events(api, run["id"])]
    assert actions.index("approval.approved") < actions.index("tasks.released")


def test_rejecting_the_canary_cancels_the_rest_and_fails_the_run(api, people):
    run = start_run(api, tasks=10, stages=["dev"], deploy_gate=False, canary={"fraction": 0.2})
    work_all(people["agent"], run["id"])
    rejected = people["lead"].post(f"/runs/{run['id']}/approvals/canary", {"decision": "reject", "comment": "no"})
    assert rejected.status_code == 200, rejected.data
    after = api.get(f"/runs/{run['id']}").data
    assert after["status"] == "failed" and after["canary_state"] == "rejected"
    statuses = sorted(t["status"] for t in tasks_of(api, run["id"]))
    assert statuses == ["cancelled"] * 8 + ["done"] * 2
    assert claim(people["agent"], run["id"]) is None


def test_a_canary_that_failed_too_often_says_so_and_a_timeout_never_approves_it(api, people, services, fake_clock):
    run = start_run(api, tasks=10, stages=["dev", "qa"], deploy_gate=False, max_iterations=2,
                    canary={"fraction": 0.2, "max_failure_rate": 0.4, "decision_timeout_seconds": 600,
                            "on_timeout": "approve"})
    agent = people["agent"]
    for _ in range(2):   # each canary task fails dev twice: it loops back, then it fails
        for got in filter(None, [claim(agent, run["id"]), claim(agent, run["id"])]):
            moved = agent.post(f"/tasks/{got['task']['id']}/advance",
                               {"claim_id": got["claim"]["claim_id"], "result": "fail"})
            assert moved.status_code == 200, moved.data
    summary = gate(api, run["id"], "canary")["summary"]
    assert (summary["failed"], summary["exceeded"], summary["failure_rate"]) == (2, True, 1.0)
    assert "max_failure_rate" in summary["warning"]
    assert services.approvals.decide_overdue(clock.now_iso()) == 0   # not due yet
    fake_clock.set(601)
    assert services.approvals.decide_overdue(clock.now_iso()) == 1
    decided = gate(api, run["id"], "canary")
    assert decided["status"] == "rejected" and decided["decided_by"] == "system:gate-timeout"
    assert api.get(f"/runs/{run['id']}").data["status"] == "failed"


def test_a_canary_timeout_applies_on_timeout_approve(api, people, services, fake_clock):
    run = start_run(api, tasks=4, stages=["dev"], deploy_gate=False,
                    canary={"fraction": 0.25, "decision_timeout_seconds": 60, "on_timeout": "approve"})
    work_all(people["agent"], run["id"])
    fake_clock.set(61)
    assert services.sweeper.sweep_once()["gates_timed_out"] == 1
    assert gate(api, run["id"], "canary")["status"] == "approved"
    assert len(work_all(people["agent"], run["id"])) == 3


def test_a_task_added_while_the_canary_works_joins_by_the_cutoff(api, people):
    run = start_run(api, tasks=6, stages=["dev"], deploy_gate=False, canary={"fraction": 0.5})
    details = api.get(f"/runs/{run['id']}").data
    added = [api.post(f"/runs/{run['id']}/tasks", {"title": f"late {i}"}).data for i in range(6)]
    for task in added:
        score = hashlib.sha256(f"{details['canary_salt']}:{task['id']}".encode()).hexdigest()
        assert task["canary"] == (score <= details["canary_cutoff"])
        assert task["held"] == (None if task["canary"] else "canary")
    before = {t["id"]: t["canary"] for t in tasks_of(api, run["id"]) if t["id"] not in {a["id"] for a in added}}
    assert sum(before.values()) == 3   # the first six moved neither in nor out


@pytest.mark.parametrize("canary", [{"fraction": 0}, {"fraction": 0.6}, {"fraction": -0.1}, {"fraction": 0.2, "x": 1},
                                    {"fraction": 0.2, "min_tasks": 0}, {"fraction": 0.2, "max_failure_rate": 1.5},
                                    {"fraction": 0.2, "on_timeout": "maybe"}])
def test_bad_canaries_are_refused_and_change_nothing(api, people, services, canary):
    before = table_snapshot(services)
    response = api.post("/projects/demo/runs", {"title": "bad", "tasks": [{"title": "t"}], "canary": canary})
    assert response.status_code == 400 and response.data["error"]["code"] == "invalid_body", response.data
    assert table_snapshot(services) == before


# ---- usage and budgets


def test_usage_rolls_up_per_stage_role_agent_and_model_in_one_read(api, people, services):
    run = start_run(api, tasks=2, stages=["dev", "qa"], deploy_gate=False)
    agent = people["agent"]
    got = claim(agent, run["id"])
    task_id, claim_id = got["task"]["id"], got["claim"]["claim_id"]
    reported = agent.post(f"/tasks/{task_id}/usage", {"model": "claude-sonnet-4-5", "tokens_in": 1000,
                                                     "tokens_out": 200, "tokens_cached": 300, "cost_usd": 0.25,
                                                     "wall_seconds": 30}, headers={"Baton-Claim": claim_id})
    assert reported.status_code == 201, reported.data
    assert reported.data["task_usage"]["cost_usd"] == 0.25 and reported.data["run_usage"]["tokens"] == 1200
    beat = agent.post(f"/tasks/{task_id}/heartbeat", {"claim_id": claim_id, "usage": {
        "model": "gpt-5", "tokens_in": 10, "tokens_out": 5, "cost_usd": 0.05}})
    assert beat.status_code == 200, beat.data
    agent.post(f"/tasks/{task_id}/advance", {"claim_id": claim_id, "result": "pass", "usage": {
        "tokens_in": 1, "tokens_out": 1, "cost_usd": 0.01}})
    with dynamodb_operations(services.repos.client) as calls:
        usage = api.get(f"/runs/{run['id']}/usage")
    assert usage.status_code == 200, usage.data
    assert calls == ["GetItem", "BatchGetItem"]   # the key, then the run with its roll-up
    body = usage.data
    assert body["total"]["cost_usd"] == pytest.approx(0.31) and body["total"]["reports"] == 3
    assert body["total"]["tokens_cached"] == 300 and body["total"]["wall_seconds"] == 30
    assert set(body["by_model"]) == {"claude-sonnet-4-5", "gpt-5", "unknown"}
    assert body["by_stage"]["dev"]["reports"] == 3 and body["by_role"]["dev"]["tokens_in"] == 1011
    assert set(body["by_agent"]) == {"worker"}
    assert body["budget"] == {"max_cost_usd": None, "max_tokens": None, "used_fraction": 0.0, "state": "ok"}
    task = api.get(f"/tasks/{task_id}").data
    assert task["usage"]["reports"] == 3 and task["usage"]["tokens_out"] == 206


def test_usage_is_written_under_a_live_claim_only(api, people, services):
    run = start_run(api, tasks=1, stages=["dev"], deploy_gate=False)
    got = claim(people["agent"], run["id"])
    before = table_snapshot(services)
    refused = people["agent"].post(f"/tasks/{got['task']['id']}/usage", {"tokens_in": 1, "tokens_out": 1,
                                                                         "cost_usd": 1})
    assert refused.status_code == 409 and refused.data["error"]["code"] == "claim_not_held"
    assert table_snapshot(services) == before


@pytest.mark.parametrize("body", [{"tokens_in": -1, "tokens_out": 0, "cost_usd": 0},
                                  {"tokens_in": 0, "tokens_out": 0, "cost_usd": -0.5},
                                  {"tokens_in": 0, "tokens_out": 0}, {"tokens_in": 0, "tokens_out": 0, "cost_usd": 1e400},
                                  {"tokens_in": 0, "tokens_out": 0, "cost_usd": 1, "model": "<b>x</b>"}])
def test_bad_usage_is_refused_and_changes_nothing(api, people, services, body):
    run = start_run(api, tasks=1, stages=["dev"], deploy_gate=False)
    got = claim(people["agent"], run["id"])
    before = table_snapshot(services)
    response = people["agent"].post(f"/tasks/{got['task']['id']}/usage", body,
                                    headers={"Baton-Claim": got["claim"]["claim_id"]})
    assert response.status_code in (400, 422), response.data
    assert table_snapshot(services) == before


def budget_run(api) -> dict[str, Any]:
    return start_run(api, tasks=3, stages=["dev"], deploy_gate=False, ceilings={"max_cost_usd": 1})


def spend(agent, run_id: str, cost: float) -> str:
    got = claim(agent, run_id)
    moved = agent.post(f"/tasks/{got['task']['id']}/advance", {"claim_id": got["claim"]["claim_id"],
                                                               "result": "pass", "usage": {
                                                                   "tokens_in": 0, "tokens_out": 0,
                                                                   "cost_usd": cost}})
    assert moved.status_code == 200, moved.data
    return got["task"]["id"]


def test_a_budget_warns_then_waits_at_its_gate_until_a_raise(api, people):
    run = budget_run(api)
    agent = people["agent"]
    spend(agent, run["id"], 0.4)
    assert "budget.warning" not in [e["action"] for e in events(api, run["id"])]
    spend(agent, run["id"], 0.45)
    assert [e["action"] for e in events(api, run["id"])].count("budget.warning") == 1
    assert api.get(f"/runs/{run['id']}/usage").data["budget"]["state"] == "warning"
    # The third task is claimed before the budget runs out; it finishes, and its usage counts.
    got = claim(agent, run["id"])
    report = agent.post(f"/tasks/{got['task']['id']}/usage", {"tokens_in": 0, "tokens_out": 0, "cost_usd": 0.4},
                        headers={"Baton-Claim": got["claim"]["claim_id"]})
    assert report.data["run_usage"]["budget"]["state"] == "exhausted"
    waiting = api.get(f"/runs/{run['id']}").data
    assert (waiting["status"], waiting["gate"]) == ("awaiting_approval", "budget")
    assert gate(api, run["id"], "budget")["summary"]["state"] == "exhausted"
    added = api.post(f"/runs/{run['id']}/tasks", {"title": "more"}).data
    assert claim(agent, run["id"]) is None   # nothing new starts
    finished = agent.post(f"/tasks/{got['task']['id']}/advance", {"claim_id": got["claim"]["claim_id"],
                                                                  "result": "pass"})
    assert finished.status_code == 200   # the job in flight finishes

    no_raise = people["lead"].post(f"/runs/{run['id']}/approvals/budget", {"decision": "approve"})
    assert no_raise.status_code == 400 and no_raise.data["error"]["code"] == "raise_required"
    too_small = people["lead"].post(f"/runs/{run['id']}/approvals/budget", {"decision": "approve",
                                                                            "raise_cost_usd": 0.1})
    assert too_small.status_code == 422 and too_small.data["error"]["code"] == "raise_too_small"
    raised = people["lead"].post(f"/runs/{run['id']}/approvals/budget", {"decision": "approve",
                                                                         "raise_cost_usd": 1})
    assert raised.status_code == 200, raised.data
    assert api.get(f"/runs/{run['id']}").data["ceilings"]["max_cost_usd"] == 2.0
    assert work_all(agent, run["id"]) == [added["id"]]
    assert api.get(f"/runs/{run['id']}").data["status"] == "succeeded"


def test_rejecting_the_budget_cancels_what_is_left_and_fails_the_run(api, people):
    run = start_run(api, tasks=4, stages=["dev"], deploy_gate=False, ceilings={"max_tokens": 100})
    agent = people["agent"]
    got = claim(agent, run["id"])
    agent.post(f"/tasks/{got['task']['id']}/advance", {"claim_id": got["claim"]["claim_id"], "result": "pass",
                                                       "usage": {"tokens_in": 80, "tokens_out": 30, "cost_usd": 0}})
    assert api.get(f"/runs/{run['id']}").data["gate"] == "budget"
    rejected = people["lead"].post(f"/runs/{run['id']}/approvals/budget", {"decision": "reject"})
    assert rejected.status_code == 200, rejected.data
    assert api.get(f"/runs/{run['id']}").data["status"] == "failed"
    assert sorted(t["status"] for t in tasks_of(api, run["id"])) == ["cancelled"] * 3 + ["done"]


def test_raises_only_go_with_a_pending_budget_gate(api, people, services):
    run = budget_run(api)
    before = table_snapshot(services)
    not_pending = people["lead"].post(f"/runs/{run['id']}/approvals/budget", {"decision": "approve",
                                                                              "raise_cost_usd": 5})
    assert not_pending.status_code == 409 and not_pending.data["error"]["code"] == "gate_not_pending"
    for body in ({"decision": "approve", "raise_cost_usd": -1}, {"decision": "approve", "raise_tokens": 0},
                 {"decision": "approve", "raise_cost_usd": "5"}):
        response = people["lead"].post(f"/runs/{run['id']}/approvals/budget", body)
        assert response.status_code == 400, (body, response.data)
    assert table_snapshot(services) == before
    canary_run = start_run(api, tasks=4, stages=["dev"], deploy_gate=False, canary={"fraction": 0.25})
    work_all(people["agent"], canary_run["id"])
    wrong_gate = people["lead"].post(f"/runs/{canary_run['id']}/approvals/canary", {"decision": "approve",
                                                                                    "raise_cost_usd": 5})
    assert wrong_gate.status_code == 400 and wrong_gate.data["error"]["code"] == "raise_not_applicable"


# ---- rollback


def released_run(api, people) -> tuple[dict[str, Any], str]:
    run = start_run(api, tasks=1, stages=["dev"])
    work_all(people["agent"], run["id"])
    assert people["lead"].post(f"/runs/{run['id']}/approvals/deploy", {"decision": "approve"}).status_code == 200
    got = claim(people["agent"], run["id"], "cicd")
    moved = people["agent"].post(f"/tasks/{got['task']['id']}/advance", {
        "claim_id": got["claim"]["claim_id"], "result": "pass",
        "outputs": {"release_commit": "b" * 40, "base_commit": "a" * 40}})
    assert moved.status_code == 200, moved.data
    assert moved.data["outputs"] == {"release_commit": "b" * 40, "base_commit": "a" * 40}
    assert api.get(f"/runs/{run['id']}").data["status"] == "succeeded"
    return run, got["task"]["id"]


def test_a_rollback_carries_the_release_commits_and_ends_the_run_rolled_back(api, people):
    run, release_id = released_run(api, people)
    made = people["lead"].post(f"/runs/{run['id']}/rollback", {"reason": "broke production"})
    assert made.status_code == 201, made.data
    task = made.data
    assert (task["source"], task["stage"], task["parent_task_id"]) == ("rollback", "cicd", release_id)
    assert task["inputs"] == {"release_task_id": release_id, "release_commit": "b" * 40, "base_commit": "a" * 40}
    assert api.get(f"/tasks/{task['id']}/context").data["task"]["inputs"]["base_commit"] == "a" * 40
    again = people["lead"].post(f"/runs/{run['id']}/rollback", {"reason": "twice"})
    assert again.status_code == 409
    got = claim(people["agent"], run["id"], "cicd")
    assert got["task"]["id"] == task["id"]
    people["agent"].post(f"/tasks/{task['id']}/advance", {"claim_id": got["claim"]["claim_id"], "result": "pass"})
    assert api.get(f"/runs/{run['id']}").data["status"] == "rolled_back"


def test_only_a_released_run_can_be_rolled_back(api, people, services):
    running = start_run(api, tasks=1, stages=["dev"])
    before = table_snapshot(services)
    refused = people["lead"].post(f"/runs/{running['id']}/rollback", {"reason": "why not"})
    assert refused.status_code == 409 and refused.data["error"]["code"] == "run_not_released"
    assert people["lead"].post(f"/runs/{running['id']}/rollback", {}).status_code == 400
    assert api.post(f"/runs/{running['id']}/rollback", {"reason": "admin"}).status_code == 403
    assert table_snapshot(services) == before


def test_outputs_are_bounded(api, people, services):
    run = start_run(api, tasks=1, stages=["dev", "qa"], deploy_gate=False)
    got = claim(people["agent"], run["id"])
    before = table_snapshot(services)
    big = people["agent"].post(f"/tasks/{got['task']['id']}/advance", {
        "claim_id": got["claim"]["claim_id"], "result": "pass", "outputs": {"log": "x" * 17_000}})
    assert big.status_code == 400, big.data
    not_object = people["agent"].post(f"/tasks/{got['task']['id']}/advance", {
        "claim_id": got["claim"]["claim_id"], "result": "pass", "outputs": ["a"]})
    assert not_object.status_code == 400, not_object.data
    assert table_snapshot(services) == before


def test_a_fix_task_of_a_canary_task_is_part_of_the_canary_and_the_gate_waits_for_it(api, people):
    run = start_run(api, tasks=4, stages=["dev"], deploy_gate=False, canary={"fraction": 0.25})
    agent = people["agent"]
    got = claim(agent, run["id"])
    reported = agent.post(f"/tasks/{got['task']['id']}/findings", {"format": "security_report", "report": {
        "findings": [{"title": "assert used", "severity": "high", "file": "app.py", "line": 3}]}},
        headers={"Baton-Claim": got["claim"]["claim_id"]})
    assert reported.status_code == 201, reported.data
    fix_id = reported.data["created_tasks"][0]["id"]
    fix = api.get(f"/tasks/{fix_id}").data
    assert fix["canary"] is True and fix["held"] is None and fix["parent_task_id"] == got["task"]["id"]
    agent.post(f"/tasks/{got['task']['id']}/advance", {"claim_id": got["claim"]["claim_id"], "result": "fail"})
    assert api.get(f"/runs/{run['id']}").data.get("gate") is None   # the fix task is still open
    work_all(agent, run["id"])
    summary = gate(api, run["id"], "canary")["summary"]
    assert (summary["tasks"], summary["fix_tasks"]) == (2, 1)


def test_the_runners_jobs_roll_up_per_role_not_per_job(api, people, services):
    """Baton's runner claims with its job id; rolled up per job, the run's usage item would grow by a
    set of counters per job until DynamoDB refused it (400 KB). Its jobs are one agent per role."""
    from tests.support.jobs import job_token_for

    run = start_run(api, tasks=3, stages=["dev"], deploy_gate=False)
    tasks = api.get(f"/runs/{run['id']}/tasks").data["items"]
    for task in tasks:
        runner = api.as_key(job_token_for(services, task["id"]))
        reported = runner.post(f"/tasks/{task['id']}/usage", {"model": "m", "tokens_in": 10, "tokens_out": 1,
                                                                  "cost_usd": 0.5})
        assert reported.status_code == 201, reported.data
    body = api.get(f"/runs/{run['id']}/usage").data
    assert set(body["by_agent"]) == {"runner:dev"} and body["by_agent"]["runner:dev"]["reports"] == 3
    events = api.get(f"/runs/{run['id']}/events?limit=200").data["items"]
    reported_by = {e["data"]["agent_id"] for e in events if e["action"] == "usage.reported"}
    assert reported_by == {"job-setup"}   # the audit log keeps the agent id the job claimed with
