"""Handoffs through the API: the baton passed dev → qa → security → docs, and the lifecycle rules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api, start_run
from tests.support.aws import table_snapshot as snapshot
from tests.support.proofs import declare, store_proof

NEXT_ROLE = {"dev": "qa", "qa": "security", "security": "docs", "docs": "cicd"}
STAGE_ROLE = {"dev": "dev", "qa": "qa", "sec": "security", "docs": "docs"}
REQUIRED = {"dev": ("code_diff", b"diff --git a/app.py b/app.py\n", "change.diff", "text/x-diff"),
            "qa": ("test_result", b"<testsuite tests='4'/>", "junit.xml", "application/xml"),
            "security": ("report", b'{"version": "2.1.0", "runs": []}', "bandit.sarif", "application/sarif+json")}


def handoff_body(from_role: str, to_role: str, **fields: Any) -> dict[str, Any]:
    return {"from_role": from_role, "to_role": to_role, "summary": f"{from_role} is done",
            "work_done": [{"ref": "commit 1a2b3c", "description": f"{from_role} work"}],
            "decisions": [{"choice": "kept the parser", "alternatives": ["rewrite it", "vendor a library"],
                           "reason": "smallest change that passes"}],
            "notes_for_next": f"{to_role}: look at app.py first", "learnings": ["the fixtures are slow"],
            "open_questions": ["is 0 a valid quantity?"], "resume_prompt": f"Continue as {to_role}.",
            "confidence": "high", **fields}


@pytest.fixture
def task(api, project) -> dict[str, Any]:
    run = start_run(api, tasks=1, stages=["dev", "qa"])
    return api.get(f"/runs/{run['id']}/tasks").data["items"][0]


def test_a_full_handoff_chain_dev_qa_security_docs_is_readable_in_order(api, services, project):
    run = start_run(api, tasks=1, stages=["dev", "qa", "sec", "docs"], deploy_gate=False)
    task_id = api.get(f"/runs/{run['id']}/tasks").data["items"][0]["id"]
    written = []
    for stage in ("dev", "qa", "sec", "docs"):
        role = STAGE_ROLE[stage]
        claimed = api.post("/queue/claim", {"stage": stage, "agent_id": f"{role}-agent", "project_id": "demo"})
        assert claimed.status_code == 200, claimed.data
        # the agent reads what the previous one left, and takes the baton
        context = api.get(f"/tasks/{task_id}/context").data
        if written:
            latest = context["handoffs"][0]
            assert latest["id"] == written[-1]["id"] and latest["to_role"] == role
            assert api.post(f"/handoffs/{latest['id']}/accept", {"notes": f"{role} on it"}).status_code == 200
        proof_ids = []
        if role in REQUIRED:
            proof_type, data, filename, content_type = REQUIRED[role]
            proof_ids.append(store_proof(api, services, task_id, proof_type, data, filename, content_type)["id"])
        created = api.post(f"/tasks/{task_id}/handoffs", handoff_body(role, NEXT_ROLE[role], proof_ids=proof_ids))
        assert created.status_code == 201, created.data
        assert created.data["status"] == "created" and created.data["stage"] == stage
        written.append(created.data)
        if len(written) > 1:
            assert api.post(f"/handoffs/{written[-2]['id']}/complete").status_code == 200
        advanced = api.post(f"/tasks/{task_id}/advance", {"claim_id": claimed.data["claim"]["claim_id"],
                                                          "result": "pass"})
        assert advanced.status_code == 200, advanced.data
    assert api.get(f"/tasks/{task_id}").data["status"] == "done"

    listed = api.get(f"/tasks/{task_id}/handoffs").data["items"]
    assert [h["id"] for h in listed] == [h["id"] for h in reversed(written)]      # newest first
    chronological = list(reversed(listed))
    assert [(h["from_role"], h["to_role"]) for h in chronological] == [
        ("dev", "qa"), ("qa", "security"), ("security", "docs"), ("docs", "cicd")]
    assert [h["status"] for h in chronological] == ["completed", "completed", "completed", "created"]
    assert [len(h["proof_ids"]) for h in chronological] == [1, 1, 1, 0]
    first = api.get(f"/handoffs/{chronological[0]['id']}").data
    assert first["decisions"][0]["alternatives"] == ["rewrite it", "vendor a library"]
    assert [(t["status"], t["notes"]) for t in first["transitions"]] == [
        ("created", ""), ("accepted", "qa on it"), ("completed", "")]
    assert first["transitions"][1]["by"].startswith("admin:")
    actions = [e["action"] for e in api.get(f"/runs/{run['id']}/events?limit=200").data["items"]]
    assert actions.count("handoff.created") == 4 and actions.count("handoff.completed") == 3


def test_the_lifecycle_allows_only_its_transitions(api, task):
    def new() -> str:
        return api.post(f"/tasks/{task['id']}/handoffs", handoff_body("dev", "qa")).data["id"]

    def move(handoff_id: str, action: str) -> int:
        return api.post(f"/handoffs/{handoff_id}/{action}").status_code

    a = new()
    assert move(a, "complete") == 409          # must be accepted first
    assert move(a, "accept") == 200
    assert move(a, "accept") == 409
    assert move(a, "complete") == 200
    for action in ("accept", "complete", "fail"):
        assert move(a, action) == 409
    b = new()
    assert move(b, "fail") == 200               # created → failed
    assert move(b, "accept") == 409
    c = new()
    assert move(c, "accept") == 200 and move(c, "fail") == 200    # accepted → failed
    refused = api.post(f"/handoffs/{c}/complete")
    assert refused.data["error"]["code"] == "illegal_transition"
    assert "failed" in refused.data["error"]["message"]
    assert api.get(f"/handoffs/{c}").data["status"] == "failed"


def test_a_refused_transition_changes_nothing(api, services, task):
    handoff_id = api.post(f"/tasks/{task['id']}/handoffs", handoff_body("dev", "qa")).data["id"]
    before = snapshot(services)
    assert api.post(f"/handoffs/{handoff_id}/complete").status_code == 409
    assert api.post(f"/handoffs/{handoff_id}/accept", {"notes": 5}).status_code == 400
    assert api.post(f"/handoffs/{handoff_id}/accept", {"status": "completed"}).status_code == 400
    assert snapshot(services) == before


def test_handoffs_cite_only_stored_proofs_of_their_task(api, services, task, project):
    other_run = start_run(api, tasks=1, stages=["dev"])
    other_task = api.get(f"/runs/{other_run['id']}/tasks").data["items"][0]
    foreign = store_proof(api, services, other_task["id"])
    pending = declare(api, task["id"]).data["proof"]
    mine = store_proof(api, services, task["id"], filename="mine.xml")
    before = snapshot(services)
    for proof_ids, code in (([foreign["id"]], "unknown_proofs"), (["prf_01ARZ3NDEKTSV4RRFFQ69G5FAV"], "unknown_proofs"),
                            ([pending["id"]], "proofs_not_stored"), ([mine["id"], mine["id"]], "invalid_body")):
        response = api.post(f"/tasks/{task['id']}/handoffs", handoff_body("dev", "qa", proof_ids=proof_ids))
        assert response.status_code in (400, 422), response.data
        assert response.data["error"]["code"] == code, proof_ids
    assert snapshot(services) == before
    ok = api.post(f"/tasks/{task['id']}/handoffs", handoff_body("dev", "qa", proof_ids=[mine["id"]]))
    assert ok.status_code == 201 and ok.data["proof_ids"] == [mine["id"]]


BAD_BODIES = [
    {"summary": ""}, {"summary": "x" * 4001}, {"confidence": "certain"}, {"from_role": "boss"},
    {"work_done": [{"description": "no ref"}]}, {"work_done": [{"ref": "r", "extra": 1}]},
    {"decisions": [{"choice": "c", "alternatives": "one"}]}, {"learnings": [""]}, {"open_questions": [3]},
    {"status": "completed"}, {"id": "hof_mine"}, {"learnings": ["l"] * 51}, {"notes_for_next": None},
]


def test_bad_handoff_bodies_are_400_and_leave_nothing_behind(api, services, task):
    before = snapshot(services)
    for overrides in BAD_BODIES:
        response = api.post(f"/tasks/{task['id']}/handoffs", {**handoff_body("dev", "qa"), **overrides})
        assert response.status_code == 400, (overrides, response.data)
        assert response.data["error"]["code"] == "invalid_body"
    for missing in ("from_role", "to_role", "summary", "confidence"):
        body = handoff_body("dev", "qa")
        del body[missing]
        assert api.post(f"/tasks/{task['id']}/handoffs", body).status_code == 400, missing
    assert snapshot(services) == before


def test_handoffs_page_newest_first(api, task):
    ids = [api.post(f"/tasks/{task['id']}/handoffs", handoff_body("dev", "qa", summary=f"h{i}")).data["id"]
           for i in range(5)]
    seen, cursor = [], None
    while True:
        page = api.get(f"/tasks/{task['id']}/handoffs?limit=2" + (f"&cursor={cursor}" if cursor else "")).data
        seen += [h["id"] for h in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))


def test_who_may_read_and_write_handoffs(api: Api, services, task):
    handoff_id = api.post(f"/tasks/{task['id']}/handoffs", handoff_body("dev", "qa")).data["id"]
    api.post("/projects", {"id": "other", "name": "Other", "repository_url": "https://example.com/o.git"})
    other = api.as_key(api.post("/keys", {"name": "o", "principal": "agent", "project_ids": ["other"]}).data["key"])
    agent = api.as_key(api.post("/keys", {"name": "a", "principal": "agent", "project_ids": ["demo"]}).data["key"])
    assert other.get(f"/handoffs/{handoff_id}").status_code == 404
    assert other.get(f"/tasks/{task['id']}/handoffs").status_code == 404
    assert other.post(f"/tasks/{task['id']}/handoffs", handoff_body("dev", "qa")).status_code == 404
    assert other.post(f"/handoffs/{handoff_id}/accept").status_code == 404
    # An agent writes only under its live claim of the task (contract v1.1): without one, 409.
    refused = agent.post(f"/handoffs/{handoff_id}/accept")
    assert refused.status_code == 409 and refused.data["error"]["code"] == "claim_not_held"
    assert agent.post(f"/tasks/{task['id']}/handoffs", handoff_body("qa", "dev")).status_code == 409
    claim = agent.post("/queue/claim", {"stage": task["stage"], "agent_id": "a-1", "task_id": task["id"]}).data["claim"]
    held = {"Baton-Claim": claim["claim_id"]}
    assert agent.post(f"/handoffs/{handoff_id}/accept", headers=held).status_code == 200
    assert agent.post(f"/tasks/{task['id']}/handoffs", handoff_body("qa", "dev"), headers=held).status_code == 201
    assert agent.post(f"/tasks/{task['id']}/handoffs", handoff_body("qa", "dev"),
                      headers={"Baton-Claim": "clm_not_mine"}).status_code == 409
    for bad in ("hof_01ARZ3NDEKTSV4RRFFQ69G5FAV", "nope", task["id"]):
        assert api.get(f"/handoffs/{bad}").status_code == 404
    assert api.get("/tasks/task_01ARZ3NDEKTSV4RRFFQ69G5FAV/handoffs").status_code == 404


# --------------------------------------------------------------------------- pure rules and races


def test_the_lifecycle_table():
    from chalicelib.domain.errors import ConflictError
    from chalicelib.domain.handoffs import HandoffAction as A, HandoffStatus as S, next_handoff_status

    allowed = {(S.created, A.accept): S.accepted, (S.accepted, A.complete): S.completed,
               (S.created, A.fail): S.failed, (S.accepted, A.fail): S.failed}
    for status in S:
        for action in A:
            if (status, action) in allowed:
                assert next_handoff_status(status, action) == allowed[(status, action)]
            else:
                with pytest.raises(ConflictError):
                    next_handoff_status(status, action)


def test_two_agents_accepting_at_once_one_wins_the_other_gets_409(api, services, task, monkeypatch):
    from chalicelib.domain.errors import ConflictError
    from chalicelib.domain.handoffs import HandoffAction, HandoffNote

    handoff_id = api.post(f"/tasks/{task['id']}/handoffs", handoff_body("dev", "qa")).data["id"]
    admin = services.keys.authenticate("Bearer " + api.key)
    stale = services.handoffs.get(admin, handoff_id)                # both read "created"
    assert api.post(f"/handoffs/{handoff_id}/accept").status_code == 200          # the first one writes
    monkeypatch.setattr(services.handoffs, "get", lambda *a, **k: stale)
    with pytest.raises(ConflictError) as lost:
        services.handoffs.transition(admin, handoff_id, HandoffAction.accept, HandoffNote())
    assert lost.value.code == "illegal_transition"
    monkeypatch.undo()
    history = api.get(f"/handoffs/{handoff_id}").data["transitions"]
    assert [t["status"] for t in history] == ["created", "accepted"]
