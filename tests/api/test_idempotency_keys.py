"""Idempotency-Key on mutating POSTs: replays return the first response and change nothing."""

from tests.support.api import relax_roles, start_run

KEY = "3f1e2c1a-0b7d-4d8e-9a55-5f8f0c6b2a11"


def test_a_replayed_run_creation_returns_the_first_run_and_creates_no_second(api, project):
    body = {"title": "once", "tasks": [{"title": "t"}]}
    first = api.post("/projects/demo/runs", body, headers={"Idempotency-Key": KEY})
    second = api.post("/projects/demo/runs", body, headers={"Idempotency-Key": KEY})
    assert first.status_code == second.status_code == 201
    assert first.data["id"] == second.data["id"]
    assert len(api.get("/projects/demo/runs").data["items"]) == 1


def test_the_same_key_with_another_body_is_a_conflict(api, project):
    api.post("/projects/demo/runs", {"title": "a", "tasks": []}, headers={"Idempotency-Key": KEY})
    other = api.post("/projects/demo/runs", {"title": "b", "tasks": []}, headers={"Idempotency-Key": KEY})
    assert other.status_code == 409
    assert other.data["error"]["code"] == "idempotency_key_reused"
    assert len(api.get("/projects/demo/runs").data["items"]) == 1


def test_a_replayed_advance_changes_nothing_the_second_time(api, project):
    relax_roles(api)
    run = start_run(api, tasks=1, stages=["dev", "qa"])
    claimed = api.post("/queue/claim", {"stage": "dev", "agent_id": "a", "project_id": "demo"}).data
    body = {"claim_id": claimed["claim"]["claim_id"], "result": "pass", "notes": ""}
    path = f"/tasks/{claimed['task']['id']}/advance"
    first = api.post(path, body, headers={"Idempotency-Key": KEY})
    events = api.get(f"/runs/{run['id']}/events").data["items"]
    second = api.post(path, body, headers={"Idempotency-Key": KEY})
    assert first.status_code == second.status_code == 200
    assert first.data == second.data
    assert api.get(f"/runs/{run['id']}/events").data["items"] == events
    # Without the key, the repeat is refused by the lease rule instead (the claim was released).
    assert api.post(path, body).status_code == 409


def test_keys_are_scoped_to_the_caller(api, project, services):
    other_admin = services.keys.bootstrap_admin("second")[1]
    body = {"title": "x", "tasks": []}
    a = api.post("/projects/demo/runs", body, headers={"Idempotency-Key": KEY})
    b = api.as_key(other_admin).post("/projects/demo/runs", body, headers={"Idempotency-Key": KEY})
    assert a.data["id"] != b.data["id"]


def test_a_malformed_key_is_a_400_and_creates_nothing(api, project):
    bad = api.post("/projects/demo/runs", {"title": "x", "tasks": []}, headers={"Idempotency-Key": "no spaces!"})
    assert bad.status_code == 400
    assert api.get("/projects/demo/runs").data["items"] == []


def test_a_duplicate_arriving_while_the_first_runs_is_a_409_with_retry_after(api, project, services, monkeypatch):
    """Deterministic: the duplicate is sent from inside the first request, while it is in progress."""
    seen = {}
    original = services.runs.start

    def start_and_race(principal, project_id, request):
        seen["duplicate"] = api.post("/projects/demo/runs", {"title": "x", "tasks": []},
                                     headers={"Idempotency-Key": KEY})
        return original(principal, project_id, request)

    monkeypatch.setattr(services.runs, "start", start_and_race)
    first = api.post("/projects/demo/runs", {"title": "x", "tasks": []}, headers={"Idempotency-Key": KEY})
    assert first.status_code == 201
    duplicate = seen["duplicate"]
    assert duplicate.status_code == 409
    assert duplicate.data["error"]["code"] == "request_in_progress"
    assert duplicate.headers["Retry-After"] == "1"
    assert len(api.get("/projects/demo/runs").data["items"]) == 1
