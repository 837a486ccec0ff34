"""Trust the verdicts (contract v1.1): evidence only under a live claim, job tokens that die with
their job, no pass over a failing findings verdict, claims by run that read only the run's queue,
ceilings on every path that creates tasks, and waits that are reported, never failed.

Time is the fake clock of tests/support/clock.py: nothing sleeps."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain import clock, pipeline
from chalicelib.domain.entities import Task
from chalicelib.domain.enums import Stage, TaskStatus
from chalicelib.services import run_effects
from tests.support.api import relax_roles, start_run
from tests.support.aws import table_snapshot
from tests.support.clock import T0
from tests.support.jobs import job_token_for
from tests.support.round_trips import dynamodb_calls, is_authentication

CRITICAL = {"findings": [{"title": "SQL injection in /search", "severity": "critical", "file": "app.py", "line": 3}]}


def handoff(summary: str = "done") -> dict[str, Any]:
    return {"from_role": "dev", "to_role": "qa", "summary": summary, "confidence": "high"}


@pytest.fixture
def run(api, project) -> dict[str, Any]:
    relax_roles(api)
    return start_run(api, tasks=2, stages=["dev", "qa"])


@pytest.fixture
def agent(api):
    return api.as_key(api.post("/keys", {"name": "a", "principal": "agent", "project_ids": ["demo"]}).data["key"])


def first_task(api, run) -> dict[str, Any]:
    return api.get(f"/runs/{run['id']}/tasks").data["items"][0]


# ---- evidence under a live claim


def test_an_agent_whose_lease_expired_gets_409_on_handoff_proof_and_finding(api, agent, run, fake_clock):
    task = first_task(api, run)
    claimed = agent.post("/queue/claim", {"stage": "dev", "agent_id": "a-1", "task_id": task["id"],
                                          "lease_seconds": 60}).data
    held = {"Baton-Claim": claimed["claim"]["claim_id"]}
    assert agent.post(f"/tasks/{task['id']}/handoffs", handoff("live"), headers=held).status_code == 201
    fake_clock.set(61)                                               # the lease is over
    before = table_snapshot(api_services(api))
    for response in (agent.post(f"/tasks/{task['id']}/handoffs", handoff("late"), headers=held),
                     agent.post(f"/tasks/{task['id']}/proofs", {"type": "log", "filename": "a.log",
                                                                "content_type": "text/plain", "size": 1,
                                                                "sha256": "0" * 64}, headers=held),
                     agent.post(f"/tasks/{task['id']}/findings", {"format": "security_report", "report": CRITICAL},
                                headers=held)):
        assert response.status_code == 409 and response.data["error"]["code"] == "claim_not_held", response.data
    assert table_snapshot(api_services(api)) == before                # nothing was written
    # a human may always attach evidence, recorded with its actor
    assert api.post(f"/tasks/{task['id']}/handoffs", handoff("by a human")).status_code == 201


def api_services(api) -> Any:
    from chalicelib import bootstrap

    return bootstrap.get_services()


def test_a_stage_whose_findings_failed_cannot_pass_in_the_same_iteration(api, agent, run):
    task = first_task(api, run)
    claim = agent.post("/queue/claim", {"stage": "dev", "agent_id": "a-1", "task_id": task["id"]}).data["claim"]
    held = {"Baton-Claim": claim["claim_id"]}
    report = agent.post(f"/tasks/{task['id']}/findings", {"format": "security_report", "report": CRITICAL},
                        headers=held)
    assert report.status_code == 201 and report.data["verdict"] == "fail"
    refused = agent.post(f"/tasks/{task['id']}/advance", {"claim_id": claim["claim_id"], "result": "pass"})
    assert refused.status_code == 422 and refused.data["error"]["code"] == "verdict_is_fail"
    failed = agent.post(f"/tasks/{task['id']}/advance", {"claim_id": claim["claim_id"], "result": "fail"})
    assert failed.status_code == 200 and failed.data["iteration"] == 2     # looped back: a new iteration
    claim = agent.post("/queue/claim", {"stage": "dev", "agent_id": "a-1", "task_id": task["id"]}).data["claim"]
    assert agent.post(f"/tasks/{task['id']}/advance", {"claim_id": claim["claim_id"], "result": "pass"}
                      ).status_code == 200                               # iteration 2 has no failing verdict


# ---- job tokens die with their job


def test_a_job_token_used_after_its_advance_is_401_and_cannot_pass_the_next_stage(api, run):
    services = api_services(api)
    task = first_task(api, run)
    token = api.as_key(job_token_for(services, task["id"]))
    claim_id = services.repos.tasks.get(task["id"]).claim_id
    assert token.post(f"/tasks/{task['id']}/handoffs", handoff()).status_code == 201   # its claim is bound in
    assert token.post(f"/tasks/{task['id']}/advance", {"claim_id": claim_id, "result": "pass"}).status_code == 200
    after = token.post("/queue/claim", {"stage": "qa", "agent_id": "me-again", "task_id": task["id"]})
    assert after.status_code == 401 and after.data["error"]["code"] == "job_ended"
    assert token.get(f"/tasks/{task['id']}/context").status_code == 401
    assert api.get(f"/tasks/{task['id']}").data["stage"] == "qa"       # nobody claimed qa with it


def test_a_job_token_dies_with_its_lease_and_a_launch_code_buys_one_token_once(api, run, fake_clock):
    services = api_services(api)
    task = first_task(api, run)
    token = api.as_key(job_token_for(services, task["id"], lease_seconds=60))
    assert token.get(f"/tasks/{task['id']}").status_code == 200
    fake_clock.set(61)
    assert token.get(f"/tasks/{task['id']}").status_code == 401

    other = api.get(f"/runs/{run['id']}/tasks").data["items"][1]
    claimed = services.repos.tasks.get(other["id"])
    setup = api.post("/queue/claim", {"stage": "dev", "agent_id": "job-x", "task_id": other["id"]}).data
    claimed = services.repos.tasks.get(other["id"])
    bound = claimed.model_copy(update={"job_id": "job_x", "version": claimed.version + 1})
    services.repos.tasks.replace(bound, claimed.version)
    code = services.keys.issue_launch_code(bound, "job_x", claim_id=setup["claim"]["claim_id"],
                                           expires_at=clock.plus_seconds(clock.now_iso(), 300), token_seconds=600)
    launch = api.as_key(code)
    assert launch.get(f"/tasks/{other['id']}").status_code == 403                  # a code buys a token, nothing else
    assert launch.post("/jobs/job_other/token").status_code == 404                 # only its own job's
    first = launch.post("/jobs/job_x/token")
    assert first.status_code == 201 and first.data["token"].startswith("bt_") and first.data["task_id"] == other["id"]
    again = launch.post("/jobs/job_x/token")
    assert again.status_code == 401 and again.data["error"]["code"] == "launch_code_used"
    assert code not in str(table_snapshot(services)) and first.data["token"] not in str(table_snapshot(services))


# ---- claim by run


def test_run_id_alone_claims_for_every_principal_and_reads_only_that_run(api, agent, project):
    relax_roles(api)
    crowded = start_run(api, tasks=120, stages=["dev"])           # another run of the same project, busy
    small = start_run(api, tasks=3, stages=["dev"])
    services = api_services(api)
    for who in (api, agent):
        with dynamodb_calls(services.repos.client) as calls:
            response = who.post("/queue/claim", {"stage": "dev", "agent_id": "x", "run_id": small["id"]})
        assert response.status_code == 200 and response.data["task"]["run_id"] == small["id"]
        queries = [params for op, params in calls if op == "Query"]
        assert len(queries) == 1 and queries[0]["IndexName"] == "gsi4" and queries[0]["Limit"] <= 10
        assert len([c for c in calls if not is_authentication(c)]) <= 5
    assert crowded["progress"]["by_status"]["queued"] == 120
    assert agent.post("/queue/claim", {"stage": "dev", "agent_id": "x", "run_id": "run_nope"}).status_code == 400


# ---- ceilings on every path that creates tasks


def test_max_tasks_holds_on_every_path_that_creates_tasks(api, agent, project):
    relax_roles(api)
    run = start_run(api, tasks=2, stages=["dev"], ceilings={"max_tasks": 2})
    assert run["ceilings"]["max_fix_tasks"] == 50                     # the default fix-task ceiling
    services = api_services(api)
    before = table_snapshot(services)
    added = api.post(f"/runs/{run['id']}/tasks", {"title": "one more"})
    assert added.status_code == 422 and added.data["error"]["code"] == "ceiling_exceeded"
    bug = api.post("/projects/demo/bugs", {"title": "crash", "description": "boom", "severity": "high",
                                           "run_id": run["id"]})
    assert bug.status_code == 422 and bug.data["error"]["code"] == "ceiling_exceeded"
    assert table_snapshot(services) == before
    task = first_task(api, run)
    report = api.post(f"/tasks/{task['id']}/findings", {"format": "security_report", "report": CRITICAL})
    assert report.status_code == 201 and report.data["created_tasks"] == [] and report.data["over_ceiling"] == 1
    assert api.get(f"/runs/{run['id']}").data["progress"]["total"] == 2


# ---- liveness: waits are reported, silent claimed jobs are dispatched again


def test_a_task_waiting_past_the_queue_timeout_is_reported_once_and_keeps_waiting(api, project, fake_clock):
    from chalicelib.workers import sweep_once

    relax_roles(api)
    run = start_run(api, tasks=1, stages=["dev"], queue_timeout_seconds=600)
    fake_clock.set(599)
    assert sweep_once()["waiting_reported"] == 0
    fake_clock.set(601)
    assert sweep_once()["waiting_reported"] == 1
    fake_clock.set(5000)
    assert sweep_once()["waiting_reported"] == 0                      # reported once per wait
    events = [e for e in api.get(f"/runs/{run['id']}/events").data["items"] if e["action"] == "task.waiting_for_agent"]
    assert len(events) == 1 and events[0]["data"]["queue_timeout_seconds"] == 600
    task = first_task(api, run)
    assert task["status"] == "queued" and api.get(f"/runs/{run['id']}").data["status"] == "running"


def make_task(**fields: Any) -> Task:
    now = T0
    base = dict(id="task_01ARZ3NDEKTSV4RRFFQ69G5FAV", run_id="run_01ARZ3NDEKTSV4RRFFQ69G5FAV", project_id="demo",
                title="t", stage=Stage.qa, status=TaskStatus.in_progress, claim_id="clm_1", claimed_by="job_1",
                lease_expires_at=clock.plus_seconds(now, 60), dispatch_seq=4, attempt=1, job_id="job_1",
                sfn_token="tok", created_at=now, updated_at=now)
    return Task(**{**base, **fields})


def test_a_silent_claimed_job_is_dispatched_again_then_the_task_fails_when_attempts_run_out():
    task = make_task()
    assert pipeline.give_up_silent_job(task, now=clock.plus_seconds(T0, 59), max_attempts=3) is None   # still live
    after, transition, attempt = pipeline.give_up_silent_job(task, now=clock.plus_seconds(T0, 61), max_attempts=3)
    assert (after.status, after.stage, attempt, transition.action) == (TaskStatus.queued, Stage.qa, 2,
                                                                       "job.lease_expired")
    after, records = run_effects.answer_stage_job(task, after, attempt=attempt)
    assert records[0].output == {"next": "dispatch", "task_id": task.id, "dispatch": 5, "attempt": 2}
    assert after.sfn_token is None and after.claim_id is None
    last = make_task(attempt=3)
    after, transition, _ = pipeline.give_up_silent_job(last, now=clock.plus_seconds(T0, 61), max_attempts=3)
    assert after.status == TaskStatus.failed and transition.action == "task.attempts_exhausted"
    assert run_effects.answer_stage_job(last, after)[1][0].output == {"next": "failed"}
    queued = make_task(status=TaskStatus.queued, claim_id=None, lease_expires_at=None)
    assert pipeline.give_up_silent_job(queued, now=clock.plus_seconds(T0, 10 ** 6), max_attempts=3) is None
