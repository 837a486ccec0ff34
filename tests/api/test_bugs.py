"""Bug reports: a bug_report task in the given run or the project's backlog run, screenshots attached."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import start_run
from tests.support.aws import table_snapshot as snapshot
from tests.support.proofs import declare, store_proof

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 32


@pytest.fixture
def run(api, project) -> dict[str, Any]:
    return start_run(api, tasks=1, stages=["dev", "qa"])


def test_a_bug_in_a_given_run_is_a_bug_report_task_that_enters_the_pipeline(api, run):
    response = api.post("/projects/demo/bugs", {"title": "Checkout crashes on an empty cart",
                                                "description": "Open /cart with nothing in it.", "severity": "high",
                                                "run_id": run["id"]})
    assert response.status_code == 201, response.data
    bug = response.data
    assert bug["source"] == "bug_report" and bug["run_id"] == run["id"] and bug["parent_task_id"] is None
    assert bug["priority"] == 10 and bug["stage"] == "dev" and bug["status"] == "queued"
    assert "Severity: high" in bug["description"] and "Open /cart" in bug["description"]
    claimed = api.post("/queue/claim", {"stage": "dev", "agent_id": "d", "project_id": "demo"}).data
    assert claimed["task"]["id"] == bug["id"]                 # priority 10 before the run's priority-5 task
    assert api.get(f"/runs/{run['id']}").data["progress"]["total"] == 2


def test_bugs_without_a_run_go_to_the_projects_backlog_run_which_is_reused_then_replaced(api, project):
    agent = api.as_key(api.post("/keys", {"name": "qa-bot", "principal": "agent", "project_ids": ["demo"]}).data["key"])
    first = agent.post("/projects/demo/bugs", {"title": "Typo on the login page", "severity": "low"})
    assert first.status_code == 201, first.data
    second = agent.post("/projects/demo/bugs", {"title": "Slow search", "description": "5 s for 10 rows"})
    assert second.status_code == 201
    assert first.data["run_id"] == second.data["run_id"]
    assert (first.data["priority"], second.data["priority"]) == (5, 7)          # low, medium (the default)
    backlog = api.get(f"/runs/{first.data['run_id']}").data
    assert backlog["status"] == "running" and "Backlog" in backlog["title"] and backlog["progress"]["total"] == 2
    assert [r["id"] for r in api.get("/projects/demo/runs").data["items"]] == [backlog["id"]]
    assert api.delete(f"/runs/{backlog['id']}").data["status"] == "killed"
    third = agent.post("/projects/demo/bugs", {"title": "Logout does nothing", "severity": "critical"})
    assert third.status_code == 201 and third.data["run_id"] != backlog["id"] and third.data["priority"] == 10
    fourth = agent.post("/projects/demo/bugs", {"title": "Logo blurry", "severity": "low"})
    assert fourth.data["run_id"] == third.data["run_id"]


def test_screenshots_are_attached_as_proofs_and_shown_in_the_bug_tasks_context(api, services, run):
    qa_task = api.get(f"/runs/{run['id']}/tasks").data["items"][0]
    screenshot = store_proof(api, services, qa_task["id"], "screenshot", PNG, "cart.png", "image/png")
    bug = api.post("/projects/demo/bugs", {"title": "Cart badge wrong", "severity": "medium",
                                           "proof_ids": [screenshot["id"]]}).data
    proofs = api.get(f"/tasks/{bug['id']}/proofs").data["items"]
    assert len(proofs) == 1
    attached = proofs[0]
    assert attached["attached_from"] == screenshot["id"] and attached["task_id"] == bug["id"]
    assert attached["status"] == "stored" and attached["s3_key"] == screenshot["s3_key"]
    assert attached["sha256"] == screenshot["sha256"]
    context = api.get(f"/tasks/{bug['id']}/context").data
    assert context["proofs"][0]["id"] == attached["id"] and context["proofs"][0]["url"]
    # an attached screenshot is evidence of the bug, not of the dev stage's work
    assert context["requirements"]["missing"] == ["code_diff"]
    download = api.get(f"/proofs/{attached['id']}/download")
    assert download.status_code == 302
    events = api.get(f"/runs/{bug['run_id']}/events?limit=200").data["items"]
    created = [e for e in events if e["action"] == "task.created" and e["entity"] == f"task:{bug['id']}"]
    assert created and created[0]["data"]["attached_proofs"]   # attached in the task's own transaction


def test_bad_bug_reports_are_refused_and_leave_nothing_behind(api, services, run):
    qa_task = api.get(f"/runs/{run['id']}/tasks").data["items"][0]
    pending = declare(api, qa_task["id"], "screenshot", PNG, "x.png", "image/png").data["proof"]
    api.post("/projects", {"id": "other", "name": "Other", "repository_url": "https://example.com/o.git"})
    other_run = start_run(api, "other", tasks=1)
    other_task = api.get(f"/runs/{other_run['id']}/tasks").data["items"][0]
    foreign = store_proof(api, services, other_task["id"], "screenshot", PNG, "f.png", "image/png")
    ended = start_run(api, tasks=1)
    api.delete(f"/runs/{ended['id']}")
    before = snapshot(services)
    cases = [
        ({"title": "t", "severity": "urgent"}, 400, "invalid_body"),
        ({"severity": "high"}, 400, "invalid_body"),
        ({"title": "", "severity": "high"}, 400, "invalid_body"),
        ({"title": "t", "source": "manual"}, 400, "invalid_body"),
        ({"title": "t", "proof_ids": [pending["id"], pending["id"]]}, 400, "invalid_body"),
        ({"title": "t", "proof_ids": [pending["id"]]}, 422, "proofs_not_stored"),
        ({"title": "t", "proof_ids": [foreign["id"]]}, 422, "unknown_proofs"),
        ({"title": "t", "proof_ids": ["prf_01ARZ3NDEKTSV4RRFFQ69G5FAV", "junk"]}, 422, "unknown_proofs"),
        ({"title": "t", "run_id": other_run["id"]}, 422, "unknown_run"),
        ({"title": "t", "run_id": "run_01ARZ3NDEKTSV4RRFFQ69G5FAV"}, 422, "unknown_run"),
        ({"title": "t", "run_id": "nope"}, 422, "unknown_run"),
        ({"title": "t", "run_id": ended["id"]}, 409, "run_ended"),
    ]
    for body, status, code in cases:
        response = api.post("/projects/demo/bugs", body)
        assert response.status_code == status, (body, response.data)
        assert response.data["error"]["code"] == code, body
    assert api.post("/projects/nowhere/bugs", {"title": "t"}).status_code == 404
    outsider = api.as_key(api.post("/keys", {"name": "o", "principal": "agent", "project_ids": ["other"]}).data["key"])
    keys_made = snapshot(services)
    assert outsider.post("/projects/demo/bugs", {"title": "t"}).status_code == 404
    assert snapshot(services) == keys_made
    assert [i for i in keys_made if not i["pk"]["S"].startswith("KEY#")] == \
        [i for i in before if not i["pk"]["S"].startswith("KEY#")]
