"""The director on the local stack (Step Functions executing, agents as subprocesses): a scripted QA
agent fails the same test three times (``same-qa-failure``, tests/agents/scripted.py). After the
second failure the director leaves a note that the dev job of the next iteration finds in its
context and its prompt; after the third it escalates, and the escalation is in ``GET /attention``.
The director acts where the failure is committed, before the next stage job is dispatched, so
nothing here waits on a schedule: the test waits (with a deadline) for the run to end, then reads.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.agent.client import BatonClient
from tests.support.agents import bare_repository, scripted_role
from tests.support.waiting import wait_for

PROJECT = "e2e-director"


@pytest.fixture(scope="module")
def admin(stack, tmp_path_factory) -> BatonClient:
    client = BatonClient(stack.api_url, stack.admin_key)
    for role in ("dev", "qa", "security", "docs", "cicd"):
        client.put(f"/roles/{role}", scripted_role(role))
    repository = bare_repository(tmp_path_factory.mktemp("repo"), PROJECT)
    client.post("/projects", {"id": PROJECT, "name": "Director", "repository_url": f"file://{repository}"})
    return client


@pytest.fixture(scope="module")
def finished(admin) -> dict[str, Any]:
    run = admin.post(f"/projects/{PROJECT}/runs", {
        "title": "director", "stages": ["dev", "qa"], "max_iterations": 4, "deploy_gate": False,
        "tasks": [{"title": "same-qa-failure in the checkout total"}]})
    wait_for(lambda: admin.get(f"/runs/{run['id']}")["status"] in ("succeeded", "failed"), "the run to end", 240)
    (task,) = admin.get(f"/runs/{run['id']}/tasks?limit=50")["items"]
    return {"run": admin.get(f"/runs/{run['id']}"), "task": task,
            "events": admin.get(f"/runs/{run['id']}/events?limit=200")["items"]}


def test_the_task_loops_back_three_times_on_the_same_test_and_the_director_changes_no_verdict(finished):
    assert finished["run"]["status"] == "succeeded"
    assert finished["task"]["iteration"] == 4 and finished["task"]["status"] == "done"
    looped = [e for e in finished["events"] if e["action"] == "task.looped_back"]
    assert len(looped) == 3
    assert len({e["data"]["failure"]["fingerprint"] for e in looped}) == 1   # 7, 14, 21 and three messages: one failure
    assert looped[0]["data"]["failure"]["sample"] == "tests.test_checkout::test_total[<n>]"


def test_a_nudge_after_the_second_failure_reaches_the_next_dev_jobs_context_and_prompt(admin, finished):
    director = [e for e in finished["events"] if e["action"].startswith("director.")]
    assert [(e["action"], e["data"]["rule"]) for e in director] == [
        ("director.nudge", "same_failure"), ("director.escalate", "same_failure"),
        ("director.nudge", "near_max_iterations")]
    nudge = director[0]
    assert nudge["data"]["evidence"]["times"] == 2 and nudge["data"]["evidence"]["iterations"] == [1, 2]
    # noted before the dev job of iteration 3 was dispatched
    dev_three = next(e for e in finished["events"] if e["action"] == "job.dispatched"
                     and e["data"]["stage"] == "dev" and e["data"]["iteration"] == 3)
    assert nudge["seq"] < dev_three["seq"]
    task_id = finished["task"]["id"]
    notes = admin.get(f"/tasks/{task_id}/context")["director_notes"]
    assert [(n["rule"], n["iteration"]) for n in notes] == [("same_failure", 3), ("near_max_iterations", 4)]
    # the dev agent of iteration 3 printed the notes it found in its prompt: its output is a log proof
    proofs = admin.get(f"/tasks/{task_id}/proofs?limit=200")["items"]
    outputs = {(p["stage"], p["iteration"]): p for p in proofs if p["filename"] == "agent-output.log"}
    seen = admin.get(f"/proofs/{outputs[('dev', 3)]['id']}/text")["text"]
    assert "director notes in my prompt:" in seen and "The same failure came back 2 times in a row" in seen
    assert "tests.test_checkout::test_total[<n>]" in seen
    assert "director notes in my prompt:" not in admin.get(f"/proofs/{outputs[('dev', 2)]['id']}/text")["text"]
    assert "last iteration (4 of 4)" in admin.get(f"/proofs/{outputs[('dev', 4)]['id']}/text")["text"]


def test_the_third_failure_is_an_escalation_in_get_attention(admin, finished):
    items = [i for i in admin.get(f"/attention?project_id={PROJECT}")["items"] if i["kind"] == "escalation"]
    assert len(items) == 1
    (item,) = items
    assert item["task_id"] == finished["task"]["id"] and item["run_id"] == finished["run"]["id"]
    assert item["details"]["rule"] == "same_failure" and item["details"]["evidence"]["times"] == 3
    assert "tests.test_checkout::test_total[<n>]" in item["summary"]
    escalated = next(e for e in finished["events"] if e["action"] == "director.escalate")
    assert escalated["data"]["attention_id"] == item["id"]
