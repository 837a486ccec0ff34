"""GET /tasks/{id}/context: what the next agent needs, in at most 3 DynamoDB round trips."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from chalicelib.domain import clock
from chalicelib.domain.roles import default_roles
from chalicelib.domain.enums import Role
from tests.support.api import start_run
from tests.support.jobs import job_token_for
from tests.support.proofs import declare, store_proof
from tests.support.round_trips import dynamodb_calls, is_authentication

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def add_jobs(services: Any, task: dict[str, Any], count: int) -> None:
    """Stage jobs as the dispatcher records them in Step Functions mode (token included)."""
    for n in range(1, count + 1):
        services.repos.table.transact([services.repos.jobs.create_op({
            "job_id": f"job_{n:04d}", "task_id": task["id"], "run_id": task["run_id"], "project_id": "demo",
            "dispatch": n, "stage": "dev", "iteration": 1 + n // 10, "attempt": 1, "role": "dev", "role_version": 1,
            "role_digest": "d" * 64, "executor": "container", "status": "launched", "created_at": clock.now_iso(),
            "token": f"secret-sfn-token-{n}"})])


@pytest.fixture
def qa_task(api, services, project) -> dict[str, Any]:
    """A task at qa, iteration 1, whose run pinned the default roles (version 1)."""
    run = start_run(api, tasks=1, stages=["dev", "qa"])
    dev = api.post("/queue/claim", {"stage": "dev", "agent_id": "dev-1", "project_id": "demo"}).data
    store_proof(api, services, dev["task"]["id"], "code_diff", b"diff\n", "change.diff", "text/x-diff")
    api.post(f"/tasks/{dev['task']['id']}/handoffs", {"from_role": "dev", "to_role": "qa", "summary": "done",
                                                      "confidence": "medium"})
    passed = api.post(f"/tasks/{dev['task']['id']}/advance", {"claim_id": dev["claim"]["claim_id"], "result": "pass"})
    assert passed.status_code == 200, passed.data
    return {**passed.data, "run": run}


def test_the_context_holds_task_run_project_pinned_role_handoffs_proofs_and_attempts(api, services, qa_task):
    # a newer qa role is published after the run started: the run keeps the version it pinned
    changed = api.call("PUT", "/roles/qa", {"prompt": "a brand new qa prompt", "required_proofs": ["log"]})
    assert changed.status_code == 200 and changed.data["version"] == 2
    screenshot = store_proof(api, services, qa_task["id"], "screenshot", PNG, "home.png", "image/png")
    photo = store_proof(api, services, qa_task["id"], "other", PNG, "photo.jpg", "image/jpeg")
    log = store_proof(api, services, qa_task["id"], "log", b"all good\n", "run.log", "text/plain")
    pending = declare(api, qa_task["id"], "screenshot", PNG, "later.png", "image/png").data["proof"]
    add_jobs(services, qa_task, 2)

    response = api.get(f"/tasks/{qa_task['id']}/context")
    assert response.status_code == 200, response.data
    context = response.data
    assert context["task"]["id"] == qa_task["id"] and context["task"]["stage"] == "qa"
    assert context["run"]["id"] == qa_task["run_id"] and context["project"]["id"] == "demo"
    assert context["role"] == {"role": "qa", "version": 1, "digest": qa_task["run"]["pinned_roles"]["qa"],
                               "prompt": default_roles()[Role.qa].prompt, "required_proofs": ["test_result"]}
    assert context["requirements"] == {"stage": "qa", "iteration": 1, "required_proofs": ["test_result"],
                                       "missing": ["test_result"]}
    assert [h["from_role"] + "→" + h["to_role"] for h in context["handoffs"]] == ["dev→qa"]
    proofs = {p["id"]: p for p in context["proofs"]}
    assert list(proofs)[:4] == [pending["id"], log["id"], photo["id"], screenshot["id"]]     # newest first
    for image in (screenshot, photo):
        url = urlparse(proofs[image["id"]]["url"])
        assert url.path.endswith(image["s3_key"])
        assert int(parse_qs(url.query)["X-Amz-Expires"][0]) <= 600
        assert proofs[image["id"]]["url_expires_at"] > clock.now_iso()
    assert proofs[log["id"]]["url"] is None and proofs[pending["id"]]["url"] is None
    assert [a["job_id"] for a in context["attempts"]] == ["job_0002", "job_0001"]
    assert b"secret-sfn-token" not in response.body and "token" not in context["attempts"][0]
    assert "claim_id" not in context["task"] and "sfn_token" not in context["task"]


def test_the_context_costs_a_fixed_number_of_round_trips_and_is_bounded_however_long_the_history(api, services,
                                                                                                   qa_task):
    from chalicelib.services import context as context_module

    for i in range(30):
        assert api.post(f"/tasks/{qa_task['id']}/handoffs", {"from_role": "qa", "to_role": "dev",
                                                             "summary": f"round {i}", "confidence": "low",
                                                             "notes_for_next": "n" * 2000}).status_code == 201
        assert declare(api, qa_task["id"], "log", f"log {i}".encode(), f"log-{i}.txt", "text/plain").status_code == 201
    store_proof(api, services, qa_task["id"], "screenshot", PNG, "shot.png", "image/png")
    add_jobs(services, qa_task, 60)

    with dynamodb_calls(services.repos.client) as calls:
        context = services.context.get(services.keys.authenticate("Bearer " + api.key), qa_task["id"])
    operations = [operation for operation, _ in calls if not is_authentication((operation, _))]
    # task + latest jobs, handoffs, proofs (all 32 in the page: the stage's stored proofs are among
    # them); run/project/settings; the pinned role version, read once per process (versions never change)
    assert operations == ["Query", "Query", "Query", "BatchGetItem", "GetItem"], operations
    # The latest of each, with cursors for the rest (contract v1.1: bounded work per request).
    assert len(context.handoffs) == context_module.CONTEXT_HANDOFFS
    assert len(context.proofs) == min(32, context_module.CONTEXT_PROOFS) and context.proofs_next_cursor is None
    assert len(context.attempts) == context_module.CONTEXT_ATTEMPTS
    assert [h.summary for h in context.handoffs][:2] == ["round 29", "round 28"]
    rest = api.get(f"/tasks/{qa_task['id']}/handoffs?cursor={context.handoffs_next_cursor}&limit=200").data["items"]
    assert [h["summary"] for h in rest][0] == "round 19" and len(rest) == 31 - context_module.CONTEXT_HANDOFFS

    with dynamodb_calls(services.repos.client) as calls:
        response = api.get(f"/tasks/{qa_task['id']}/context")
    assert response.status_code == 200
    assert [op for op, params in calls if not is_authentication((op, params))] == operations[:-1]   # the role kept
    assert len(calls) == len(operations)                     # plus the API key lookup of the request itself

    # More proofs than the page holds: the stage's stored proofs are asked for (one more Query).
    for i in range(context_module.CONTEXT_PROOFS):
        assert declare(api, qa_task["id"], "log", f"more {i}".encode(), f"more-{i}.txt", "text/plain").status_code == 201
    with dynamodb_calls(services.repos.client) as calls:
        response = api.get(f"/tasks/{qa_task['id']}/context")
    assert response.status_code == 200 and response.data["proofs_next_cursor"]
    # the same requirements either way: the screenshot found beyond the page, the test result still missing
    assert response.data["requirements"]["missing"] == context.requirements.missing == ["test_result"]
    assert [op for op, params in calls if not is_authentication((op, params))] == ["Query", "Query", "Query",
                                                                                     "BatchGetItem", "Query"]


def test_the_context_stays_small_whatever_was_posted(api, services, qa_task, monkeypatch):
    from chalicelib.services import context as context_module

    monkeypatch.setattr(context_module, "CONTEXT_HANDOFF_BYTES", 50_000)
    for i in range(8):   # each near 20 KB: eight of them do not fit the budget
        assert api.post(f"/tasks/{qa_task['id']}/handoffs", {"from_role": "qa", "to_role": "dev",
                                                             "summary": f"big {i}", "confidence": "low",
                                                             "notes_for_next": "x" * 9_000,
                                                             "resume_prompt": "y" * 9_000}).status_code == 201
    response = api.get(f"/tasks/{qa_task['id']}/context")
    assert response.status_code == 200
    kept = response.data["handoffs"]
    assert 1 <= len(kept) < 8 and len(response.body) < 120_000
    rest = api.get(f"/tasks/{qa_task['id']}/handoffs?cursor={response.data['handoffs_next_cursor']}&limit=200")
    summaries = [h["summary"] for h in kept + rest.data["items"]]   # the fixture's own handoff is the oldest
    assert summaries[:8] == [f"big {i}" for i in reversed(range(8))] and len(summaries) == 9



def test_a_finished_task_has_no_role_and_nothing_missing(api, services, qa_task):
    claim = api.post("/queue/claim", {"stage": "qa", "agent_id": "qa-1", "project_id": "demo"}).data["claim"]
    store_proof(api, services, qa_task["id"])
    assert api.post(f"/tasks/{qa_task['id']}/advance", {"claim_id": claim["claim_id"], "result": "pass"}
                    ).status_code == 200
    context = api.get(f"/tasks/{qa_task['id']}/context").data
    assert context["task"]["status"] == "done" and context["role"] is None
    assert context["requirements"]["missing"] == []


def test_only_agents_of_the_project_and_the_tasks_own_job_token_see_the_context(api, services, qa_task, project):
    other_run = start_run(api, tasks=1, stages=["dev"])
    other_task = api.get(f"/runs/{other_run['id']}/tasks").data["items"][0]
    api.post("/projects", {"id": "other", "name": "Other", "repository_url": "https://example.com/o.git"})
    outsider = api.as_key(api.post("/keys", {"name": "o", "principal": "agent", "project_ids": ["other"]}).data["key"])
    assert outsider.get(f"/tasks/{qa_task['id']}/context").status_code == 404
    job = api.as_key(job_token_for(services, qa_task["id"]))
    assert job.get(f"/tasks/{qa_task['id']}/context").status_code == 200
    assert job.get(f"/tasks/{other_task['id']}/context").status_code == 404
    for bad in ("task_01ARZ3NDEKTSV4RRFFQ69G5FAV", "nope", qa_task["run_id"]):
        assert api.get(f"/tasks/{bad}/context").status_code == 404
    assert api.get(f"/tasks/{qa_task['id']}/context?verbose=1").status_code == 400
