from tests.conftest import relax_roles, start_run


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
