"""Director settings: read by all, changed by admins, and they take effect."""

import json

from tests.support.api import relax_roles, start_run
from tests.support.aws import table_snapshot


def test_admins_change_the_settings_and_runs_follow_them(api, project, services):
    assert api.get("/director/settings").data["max_iterations_default"] == 3
    changed = api.patch("/director/settings", {"max_iterations_default": 5, "include_images": False})
    assert changed.status_code == 200 and changed.data["version"] == 1
    run = start_run(api, tasks=1)
    assert run["max_iterations"] == 5                       # the default when the run gives none
    assert start_run(api, tasks=1, max_iterations=2)["max_iterations"] == 2


def test_only_admins_change_them_and_bad_input_changes_nothing(api, project, services):
    human = api.post("/keys", {"name": "h", "principal": "human", "project_ids": ["demo"]}).data["key"]
    assert api.as_key(human).get("/director/settings").status_code == 200
    assert api.as_key(human).patch("/director/settings", {"auto_advance": False}).status_code == 403
    for body in ({}, {"max_iterations_default": 0}, {"unknown": 1}, {"vision_model": None}):
        assert api.patch("/director/settings", body).status_code == 400
    assert api.get("/director/settings").data["version"] == 0


# ---- the director's rules and actions over HTTP


def test_the_rules_thresholds_are_settings_with_defaults_and_checked_bounds(api, project):
    settings = api.get("/director/settings").data
    assert (settings["same_failure_nudge_at"], settings["same_failure_escalate_at"], settings["idle_queue_minutes"],
            settings["budget_escalate_fraction"], settings["director_enabled"]) == (2, 3, 30, 0.9, True)
    changed = api.patch("/director/settings", {"same_failure_escalate_at": 4, "slow_stage_factor": 2,
                                               "pause_on_escalation": True})
    assert changed.status_code == 200 and changed.data["slow_stage_factor"] == 2.0
    for body in ({"same_failure_nudge_at": -1}, {"same_failure_escalate_at": 1}, {"budget_escalate_fraction": 1}, {"idle_queue_minutes": "30"},
                 {"slow_stage_factor": float("inf")}, {"director_enabled": "yes"}, {"lease_churn_escalate_at": 51}):
        response = api.call("PATCH", "/director/settings", raw=json.dumps(body).replace("Infinity", "1e999"))
        assert response.status_code == 400, (body, response.data)
    assert api.get("/director/settings").data["version"] == 1


def fail_qa(api, run_id: str, failure: dict) -> dict:
    got = api.post("/queue/claim", {"stage": "qa", "agent_id": "qa-1", "run_id": run_id}).data
    response = api.post(f"/tasks/{got['task']['id']}/advance", {"claim_id": got["claim"]["claim_id"], "result": "fail",
                                                               "notes": "qa failed", "failure": failure})
    assert response.status_code == 200, response.data
    return response.data


def test_a_failure_report_reaches_the_director_and_its_note_the_next_context(api, project):
    relax_roles(api)
    run = start_run(api, tasks=1, stages=["qa"], max_iterations=5)
    task = fail_qa(api, run["id"], {"failing_tests": ["tests/test_cart.py::test_total"], "error": "AssertionError"})
    assert api.get(f"/tasks/{task['id']}/context").data["director_notes"] == []
    fail_qa(api, run["id"], {"failing_tests": ["tests/test_cart.py::test_total"]})
    context = api.get(f"/tasks/{task['id']}/context").data
    (note,) = context["director_notes"]
    assert note["rule"] == "same_failure" and "tests/test_cart.py::test_total" in note["text"]
    assert note["stage"] == "qa" and note["iteration"] == 3
    assert "supervision" not in context["task"] and "supervision" not in api.get(f"/tasks/{task['id']}").data
    events = api.get(f"/runs/{run['id']}/events?limit=200").data["items"]
    nudge = [e for e in events if e["action"] == "director.nudge"]
    assert len(nudge) == 1 and nudge[0]["data"]["evidence"]["source"] == "tests"


def test_without_a_failure_report_the_error_line_of_the_notes_is_compared(api, project):
    relax_roles(api)
    run = start_run(api, tasks=1, stages=["qa"], max_iterations=5)
    for seconds in (3, 41):
        got = api.post("/queue/claim", {"stage": "qa", "agent_id": "qa-1", "run_id": run["id"]}).data
        api.post(f"/tasks/{got['task']['id']}/advance", {"claim_id": got["claim"]["claim_id"], "result": "fail",
                                                         "notes": f"ran the suite\nTimeoutError after {seconds}s"})
    events = api.get(f"/runs/{run['id']}/events?limit=200").data["items"]
    assert [e["data"]["evidence"]["sample"] for e in events if e["action"] == "director.nudge"] == [
        "TimeoutError after <n>s"]


def test_a_bad_failure_report_is_a_400_and_changes_nothing(api, project, services):
    relax_roles(api)
    run = start_run(api, tasks=1, stages=["qa"])
    got = api.post("/queue/claim", {"stage": "qa", "agent_id": "qa-1", "run_id": run["id"]}).data
    before = table_snapshot(services)
    for failure in ({"failing_tests": ["t"] * 201}, {"failing_tests": ["x" * 501]}, {"error": "e" * 2001},
                    {"tests": ["t"]}, {"failing_tests": "t"}, [], "boom"):
        response = api.post(f"/tasks/{got['task']['id']}/advance", {"claim_id": got["claim"]["claim_id"],
                                                                    "result": "fail", "failure": failure})
        assert response.status_code == 400, (failure, response.data)
    assert table_snapshot(services) == before


def test_a_paused_task_is_resumed_by_resolving_its_item_over_http(api, project):
    relax_roles(api)
    api.patch("/director/settings", {"pause_on_escalation": True})
    human = api.post("/keys", {"name": "lead", "principal": "human", "project_ids": ["demo"]}).data["key"]
    run = start_run(api, tasks=1, stages=["qa"], max_iterations=5)
    for _ in range(3):
        task = fail_qa(api, run["id"], {"failing_tests": ["t::same"]})
    assert api.get(f"/tasks/{task['id']}").data["held"] == "director"
    assert api.post("/queue/claim", {"stage": "qa", "agent_id": "qa-1", "run_id": run["id"]}).status_code == 204
    (item,) = api.get("/attention?project_id=demo").data["items"]
    assert item["kind"] == "escalation" and item["details"]["paused"] is True and item["task_id"] == task["id"]
    resolved = api.as_key(human).post(f"/attention/{item['id']}/resolve", {"comment": "go on"})
    assert resolved.status_code == 200 and resolved.data["status"] == "resolved"
    assert api.get(f"/tasks/{task['id']}").data["held"] is None
    assert api.post("/queue/claim", {"stage": "qa", "agent_id": "qa-1", "run_id": run["id"]}).status_code == 200
    again = api.as_key(human).post(f"/attention/{item['id']}/resolve", {"comment": "again"})
    assert again.status_code == 409 and again.data["error"]["code"] == "already_resolved"


def test_a_role_may_name_its_fallbacks_and_keeps_its_digest_without_them(api, project):
    current = api.get("/roles/qa").data
    spec = {k: current[k] for k in ("prompt", "executor", "command", "image", "required_proofs", "timeout_seconds",
                                    "heartbeat_seconds")}
    same = api.call("PUT", "/roles/qa", spec).data
    assert same["digest"] == current["digest"]                      # no fallback: the digest it always had
    with_fallback = api.call("PUT", "/roles/qa", {**spec, "fallback_agent_ids": ["qa-human"]})
    assert with_fallback.status_code == 200 and with_fallback.data["digest"] != current["digest"]
    for bad in ({"fallback_executor": "container", "command": None}, {"fallback_agent_ids": ["has space"]},
                {"fallback_executor": "elsewhere"}, {"fallback_agent_ids": ["a"] * 21}):
        assert api.call("PUT", "/roles/qa", {**spec, **bad}).status_code == 400, bad
