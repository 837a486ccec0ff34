"""What waits for a person (``GET /attention``): a gate's item opens with the gate and resolves
with its decision; a task waiting past its queue timeout raises a ``stuck`` item; a person
resolves an item once; lists are per project, newest first, paged."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import relax_roles, start_run
from tests.support.aws import table_snapshot


@pytest.fixture
def people(api, project) -> dict[str, Any]:
    relax_roles(api)
    made = {}
    for name, kind, projects in (("lead", "human", ["demo"]), ("agent", "agent", ["demo"]),
                                 ("stranger", "human", ["other"])):
        created = api.post("/keys", {"name": name, "principal": kind, "project_ids": projects})
        assert created.status_code == 201, created.data
        made[name] = api.as_key(created.data["key"])
    return made


def open_items(client, **query) -> list[dict[str, Any]]:
    suffix = "&".join(f"{k}={v}" for k, v in query.items())
    response = client.get(f"/attention?{suffix}" if suffix else "/attention")
    assert response.status_code == 200, response.data
    return response.data["items"]


def finish_dev(agent, run_id: str) -> None:
    while True:
        got = agent.post("/queue/claim", {"stage": "dev", "agent_id": "a", "run_id": run_id})
        if got.status_code == 204:
            return
        agent.post(f"/tasks/{got.data['task']['id']}/advance", {"claim_id": got.data["claim"]["claim_id"],
                                                                "result": "pass"})


def test_a_gate_opens_an_item_and_its_decision_resolves_it(api, people):
    run = start_run(api, tasks=2, stages=["dev"])
    finish_dev(people["agent"], run["id"])
    items = open_items(people["lead"])
    assert [(i["kind"], i["run_id"], i["details"]["gate"]) for i in items] == [("approval", run["id"], "deploy")]
    assert open_items(people["agent"]) == items          # agents see what waits in their projects
    assert open_items(people["stranger"]) == []          # nobody else does
    people["lead"].post(f"/runs/{run['id']}/approvals/deploy", {"decision": "approve", "comment": "ship"})
    assert open_items(people["lead"]) == []
    resolved = open_items(people["lead"], status="resolved")
    assert [(i["id"], i["status"], i["resolved_by"]) for i in resolved] == [(items[0]["id"], "resolved", "human:lead")]


def test_the_budget_gate_raises_a_budget_item(api, people):
    run = start_run(api, tasks=2, stages=["dev"], deploy_gate=False, ceilings={"max_cost_usd": 1})
    got = people["agent"].post("/queue/claim", {"stage": "dev", "agent_id": "a", "run_id": run["id"]}).data
    people["agent"].post(f"/tasks/{got['task']['id']}/advance", {"claim_id": got["claim"]["claim_id"], "result": "pass",
                                                                 "usage": {"tokens_in": 1, "tokens_out": 1,
                                                                           "cost_usd": 2}})
    items = open_items(api, project_id="demo")
    assert [(i["kind"], i["details"]["summary"]["state"]) for i in items] == [("budget", "exhausted")]


def test_a_task_waiting_past_its_queue_timeout_raises_a_stuck_item(api, people, fake_clock):
    from chalicelib.workers import sweep_once

    run = start_run(api, tasks=1, stages=["dev"], queue_timeout_seconds=600)
    fake_clock.set(601)
    assert sweep_once()["waiting_reported"] == 1
    items = open_items(people["lead"])
    assert [(i["kind"], i["run_id"], i["details"]["waited_seconds"]) for i in items] == [("stuck", run["id"], 601)]
    assert items[0]["task_id"] and "waited 10 min" in items[0]["summary"]


def test_a_person_resolves_an_item_once_and_an_agent_cannot(api, people, services, fake_clock):
    from chalicelib.workers import sweep_once

    start_run(api, tasks=1, stages=["dev"], queue_timeout_seconds=60)
    fake_clock.set(61)
    sweep_once()
    item = open_items(people["lead"])[0]
    before = table_snapshot(services)
    assert people["agent"].post(f"/attention/{item['id']}/resolve", {"comment": "mine"}).status_code == 403
    assert people["stranger"].post(f"/attention/{item['id']}/resolve", {}).status_code == 404
    assert people["lead"].post("/attention/att_nope/resolve", {}).status_code == 404
    assert table_snapshot(services) == before
    done = people["lead"].post(f"/attention/{item['id']}/resolve", {"comment": "an agent is on its way"})
    assert done.status_code == 200 and done.data["status"] == "resolved"
    assert done.data["comment"] == "an agent is on its way" and done.data["resolved_by"] == "human:lead"
    again = people["lead"].post(f"/attention/{item['id']}/resolve", {"comment": "twice"})
    assert again.status_code == 409 and again.data["error"]["code"] == "already_resolved"


def test_lists_page_newest_first(api, people, fake_clock):
    from chalicelib.workers import sweep_once

    api.patch("/director/settings", {"idle_queue_minutes": 0})   # its idle_queue item would make a sixth
    for n in range(5):
        fake_clock.set(n * 1000)
        start_run(api, tasks=1, stages=["dev"], queue_timeout_seconds=60)
    fake_clock.set(10_000)
    assert sweep_once()["waiting_reported"] == 5
    first = people["lead"].get("/attention?limit=2").data
    second = people["lead"].get(f"/attention?limit=2&cursor={first['next_cursor']}").data
    third = people["lead"].get(f"/attention?limit=2&cursor={second['next_cursor']}").data
    seen = first["items"] + second["items"] + third["items"]
    assert len(seen) == 5 and len({i["id"] for i in seen}) == 5 and third["next_cursor"] is None
    assert [i["created_at"] for i in seen] == sorted((i["created_at"] for i in seen), reverse=True)
    assert people["lead"].get("/attention?status=maybe").status_code == 400
    assert people["lead"].get("/attention?cursor=garbage").status_code == 400
