"""Gates end to end on the local stack, Step Functions executing: the canary gate is a state of the
run execution (a task token the approval answers), the budget gate holds new stage jobs while the
execution keeps waiting for the tasks. The agents are external (this test claims and advances
through the API), so every claim the test can or cannot make is what an agent would see.
"""

from __future__ import annotations

from typing import Any, Optional

import pytest

from chalicelib.agent.client import ApiError, BatonClient
from tests.support.waiting import wait_for

PROJECT = "e2e-gates"


def external(role: str) -> dict[str, Any]:
    return {"prompt": f"external {role}", "executor": "external", "required_proofs": [], "timeout_seconds": 600,
            "heartbeat_seconds": 300}


@pytest.fixture(scope="module")
def people(stack) -> dict[str, BatonClient]:
    admin = BatonClient(stack.api_url, stack.admin_key)
    for role in ("dev", "qa", "security", "docs", "cicd"):
        admin.put(f"/roles/{role}", external(role))
    admin.post("/projects", {"id": PROJECT, "name": "Gates", "repository_url": "https://example.com/gates.git"})
    made = {"admin": admin}
    for name, kind in (("gatekeeper", "human"), ("gate-agent", "agent")):
        made[name] = BatonClient(stack.api_url, admin.post("/keys", {"name": name, "principal": kind,
                                                                     "project_ids": [PROJECT]})["key"])
    return made


def claim(agent: BatonClient, run_id: str) -> Optional[dict[str, Any]]:
    return agent.post("/queue/claim", {"stage": "dev", "agent_id": "gate-agent", "run_id": run_id}) or None


def claim_soon(agent: BatonClient, run_id: str) -> dict[str, Any]:
    """The next dispatched task (stage jobs are dispatched asynchronously by the executions)."""
    return wait_for(lambda: claim(agent, run_id), "a task to be dispatched", 60)


def finish(agent: BatonClient, claimed: dict[str, Any], cost: Optional[float] = None) -> None:
    body: dict[str, Any] = {"claim_id": claimed["claim"]["claim_id"], "result": "pass"}
    if cost is not None:
        body["usage"] = {"tokens_in": 100, "tokens_out": 10, "cost_usd": cost, "model": "claude-sonnet-4-5"}
    agent.post(f"/tasks/{claimed['task']['id']}/advance", body)


def run_execution_status(stack, run_id: str) -> str:
    sfn = stack.services.outbox.sfn
    described = sfn.describe(sfn.run_execution_arn(run_id))
    return described["status"] if described else "NONE"


def start(admin: BatonClient, tasks: int, **fields) -> dict[str, Any]:
    return admin.post(f"/projects/{PROJECT}/runs", {"title": "gates", "stages": ["dev"], "deploy_gate": False,
                                                    "parallelism": 10, **fields,
                                                    "tasks": [{"title": f"t{i}"} for i in range(tasks)]})


def test_a_canary_run_starts_two_of_ten_waits_at_its_gate_then_runs_the_rest(stack, people):
    admin, agent, human = people["admin"], people["gate-agent"], people["gatekeeper"]
    run = start(admin, 10, canary={"fraction": 0.2})
    canary_ids = {t["id"] for t in admin.get(f"/runs/{run['id']}/tasks?limit=50")["items"] if t["canary"]}
    assert len(canary_ids) == 2
    worked = [claim_soon(agent, run["id"]) for _ in range(2)]
    assert {c["task"]["id"] for c in worked} == canary_ids
    for claimed in worked:
        finish(agent, claimed)
    wait_for(lambda: admin.get(f"/runs/{run['id']}").get("gate") == "canary", "the canary gate", 60)
    # The run execution waits on the canary gate's token; nothing else can be claimed meanwhile.
    wait_for(lambda: admin.get(f"/runs/{run['id']}/approvals")["items"] and any(
        e["action"] == "approval.requested" for e in admin.get(f"/runs/{run['id']}/events?limit=200")["items"]),
        "the run execution to reach its canary gate", 60)
    assert claim(agent, run["id"]) is None
    assert run_execution_status(stack, run["id"]) == "RUNNING"

    human.post(f"/runs/{run['id']}/approvals/canary", {"decision": "approve", "comment": "canary is fine"})
    rest = [claim_soon(agent, run["id"]) for _ in range(8)]
    assert not {c["task"]["id"] for c in rest} & canary_ids
    for claimed in rest:
        finish(agent, claimed)
    wait_for(lambda: admin.get(f"/runs/{run['id']}")["status"] == "succeeded", "the run to succeed", 60)
    wait_for(lambda: run_execution_status(stack, run["id"]) == "SUCCEEDED", "the run execution to end", 60)


def test_rejecting_the_canary_cancels_the_other_eight(stack, people):
    admin, agent, human = people["admin"], people["gate-agent"], people["gatekeeper"]
    run = start(admin, 10, canary={"fraction": 0.2})
    for _ in range(2):
        finish(agent, claim_soon(agent, run["id"]))
    wait_for(lambda: admin.get(f"/runs/{run['id']}").get("gate") == "canary", "the canary gate", 60)
    human.post(f"/runs/{run['id']}/approvals/canary", {"decision": "reject", "comment": "canary broke things"})
    assert admin.get(f"/runs/{run['id']}")["status"] == "failed"
    wait_for(lambda: sorted(t["status"] for t in admin.get(f"/runs/{run['id']}/tasks?limit=50")["items"])
             == ["cancelled"] * 8 + ["done"] * 2, "the held tasks to be cancelled", 60)
    wait_for(lambda: run_execution_status(stack, run["id"]) == "FAILED", "the run execution to fail", 60)


def test_a_budget_warns_waits_at_its_gate_and_a_raise_lets_the_run_finish(stack, people):
    admin, agent, human = people["admin"], people["gate-agent"], people["gatekeeper"]
    run = start(admin, 4, parallelism=4, ceilings={"max_cost_usd": 1})
    for _ in range(3):
        finish(agent, claim_soon(agent, run["id"]), cost=0.4)
    actions = [e["action"] for e in admin.get(f"/runs/{run['id']}/events?limit=200")["items"]]
    assert actions.count("budget.warning") == 1 and actions.count("budget.exhausted") == 1
    assert actions.index("budget.warning") < actions.index("budget.exhausted")
    assert admin.get(f"/runs/{run['id']}")["gate"] == "budget"
    # The fourth task's stage job is dispatched, but no agent may start it while the gate is pending.
    wait_for(lambda: [e["action"] for e in admin.get(f"/runs/{run['id']}/events?limit=200")["items"]
                      ].count("job.dispatched") == 4, "the fourth job to be dispatched", 60)
    assert claim(agent, run["id"]) is None
    usage = admin.get(f"/runs/{run['id']}/usage")
    assert usage["budget"]["state"] == "exhausted" and usage["total"]["cost_usd"] == pytest.approx(1.2)
    with pytest.raises(ApiError) as refused:
        human.post(f"/runs/{run['id']}/approvals/budget", {"decision": "approve"})
    assert refused.value.status == 400 and refused.value.code == "raise_required"
    human.post(f"/runs/{run['id']}/approvals/budget", {"decision": "approve", "raise_cost_usd": 1,
                                                       "comment": "worth it"})
    finish(agent, claim_soon(agent, run["id"]), cost=0.1)
    wait_for(lambda: admin.get(f"/runs/{run['id']}")["status"] == "succeeded", "the run to succeed", 60)
    assert admin.get(f"/runs/{run['id']}/usage")["budget"]["max_cost_usd"] == 2.0
    wait_for(lambda: run_execution_status(stack, run["id"]) == "SUCCEEDED", "the run execution to end", 60)


def test_rejecting_the_budget_ends_the_run_failed(stack, people):
    admin, agent, human = people["admin"], people["gate-agent"], people["gatekeeper"]
    run = start(admin, 3, parallelism=3, ceilings={"max_cost_usd": 1})
    finish(agent, claim_soon(agent, run["id"]), cost=1.5)
    assert admin.get(f"/runs/{run['id']}")["gate"] == "budget"
    human.post(f"/runs/{run['id']}/approvals/budget", {"decision": "reject", "comment": "too expensive"})
    wait_for(lambda: sorted(t["status"] for t in admin.get(f"/runs/{run['id']}/tasks")["items"])
             == ["cancelled", "cancelled", "done"], "the rest to be cancelled", 60)
    assert admin.get(f"/runs/{run['id']}")["status"] == "failed"
    wait_for(lambda: run_execution_status(stack, run["id"]) in ("FAILED", "ABORTED"), "the run execution to end", 60)
