from tests.support.api import relax_roles, start_run


def test_status_is_public(api):
    response = api.as_key(None).get("/status")
    assert response.status_code == 200
    assert response.data["status"] == "ok"


def test_run_lifecycle_through_the_api(api, project):
    relax_roles(api)
    run = start_run(api, tasks=2, stages=["dev", "qa"], deploy_gate=False)
    assert run["status"] == "running"
    assert run["progress"]["by_stage"]["dev"] == 2
    done = 0
    for _ in range(4):
        claimed = api.post("/queue/claim", {"stage": "dev" if done < 2 else "qa", "agent_id": "a1",
                                            "project_id": "demo"})
        assert claimed.status_code == 200, claimed.data
        task, claim = claimed.data["task"], claimed.data["claim"]
        advanced = api.post(f"/tasks/{task['id']}/advance", {"claim_id": claim["claim_id"], "result": "pass"})
        assert advanced.status_code == 200, advanced.data
        done += 1
    final = api.get(f"/runs/{run['id']}").data
    assert final["status"] == "succeeded"
    assert final["progress"]["by_stage"]["complete"] == 2
    events = api.get(f"/runs/{run['id']}/events").data["items"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_a_human_sending_a_task_back_reopens_a_run_waiting_at_its_gate(api, project):
    relax_roles(api)
    run = start_run(api, tasks=1, stages=["docs"])
    claimed = api.post("/queue/claim", {"stage": "docs", "agent_id": "a", "project_id": "demo"}).data
    api.post(f"/tasks/{claimed['task']['id']}/advance", {"claim_id": claimed["claim"]["claim_id"], "result": "pass"})
    assert api.get(f"/runs/{run['id']}").data["status"] == "awaiting_approval"
    moved = api.post(f"/tasks/{claimed['task']['id']}/stage", {"stage": "docs", "reason": "the docs are wrong"})
    assert moved.status_code == 200 and moved.data["status"] == "queued"
    assert api.get(f"/runs/{run['id']}").data["status"] == "running"
    again = api.post("/queue/claim", {"stage": "docs", "agent_id": "b", "project_id": "demo"}).data
    assert again["task"]["id"] == claimed["task"]["id"]
    api.post(f"/tasks/{again['task']['id']}/advance", {"claim_id": again["claim"]["claim_id"], "result": "pass"})
    assert api.get(f"/runs/{run['id']}").data["status"] == "awaiting_approval"
    approvals = api.get(f"/runs/{run['id']}/approvals").data["items"]
    assert [a["status"] for a in approvals] == ["pending"]


def test_events_after_a_non_ascii_digit_is_a_400(api, project):
    run = start_run(api, tasks=1)
    assert api.get(f"/runs/{run['id']}/events?after=%C2%B2").status_code == 400
    assert api.get(f"/runs/{run['id']}/events?after=999999999999").status_code == 400
