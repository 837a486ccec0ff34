"""End-to-end on the local stack: moto server + Step Functions + SQS pump + local executor + API.

Agents are real subprocesses (the runner) working a scripted command. Waiting is by polling the
API until a condition holds or a generous deadline passes; no outcome depends on timing.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from chalicelib.agent.client import BatonClient
from tests.support.agents import bare_repository, scripted_role
from tests.support.waiting import wait_for as wait_until


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> str:
    """A local bare git repository the agents clone and push task branches to."""
    return f"file://{bare_repository(tmp_path_factory.mktemp('repo'), 'e2e')}"


@pytest.fixture(scope="module")
def admin(stack, repository) -> BatonClient:
    client = BatonClient(stack.api_url, stack.admin_key)
    for role in ("dev", "qa", "security", "docs", "cicd"):
        client.put(f"/roles/{role}", scripted_role(role))
    client.post("/projects", {"id": "e2e", "name": "E2E", "repository_url": repository})
    return client


def wait_for(check: Callable[[], Any], what: str, deadline_seconds: float = 120) -> Any:
    return wait_until(check, what, deadline_seconds)


def tasks_of(client: BatonClient, run_id: str) -> list[dict[str, Any]]:
    return client.get(f"/runs/{run_id}/tasks?limit=200")["items"]


def events_of(client: BatonClient, run_id: str) -> list[dict[str, Any]]:
    return client.get(f"/runs/{run_id}/events?limit=200")["items"]


def test_a_run_with_a_qa_loop_back_waits_for_the_deploy_gate_then_succeeds(background_runs, stack):
    """Three tasks of scripted agents through every stage ("gated" in tests/e2e/background.py)."""
    admin = BatonClient(stack.api_url, stack.admin_key)
    human = BatonClient(stack.api_url, admin.post("/keys", {"name": "reviewer", "principal": "human",
                                                            "project_ids": ["e2e-gated"]})["key"])
    run_id = background_runs["gated"]["id"]
    wait_for(lambda: admin.get(f"/runs/{run_id}")["status"] == "awaiting_approval", "the deploy gate")
    tasks = {t["title"]: t for t in tasks_of(admin, run_id)}
    assert all(t["stage"] == "complete" and t["status"] == "done" for t in tasks.values())
    assert tasks["fix flaky-qa parser"]["iteration"] == 2
    assert tasks["add login"]["iteration"] == 1
    assert admin.get(f"/runs/{run_id}/approvals")["items"][0]["status"] == "pending"
    # Nothing ships until a human approves: the run stays at the gate.
    assert admin.get(f"/runs/{run_id}")["status"] == "awaiting_approval"
    human.post(f"/runs/{run_id}/approvals/deploy", {"decision": "approve", "comment": "ship it"})
    wait_for(lambda: admin.get(f"/runs/{run_id}")["status"] == "succeeded", "the release")
    release = [t for t in tasks_of(admin, run_id) if t["source"] == "release"]
    assert len(release) == 1 and release[0]["stage"] == "complete"
    actions = [e["action"] for e in events_of(admin, run_id)]
    assert actions[0] == "run.created" and actions[1] == "run.started"
    assert actions.count("task.looped_back") == 1
    assert actions.index("task.looped_back") < actions.index("task.created")  # release after the loop-back
    assert "approval.requested" in actions or "task.created" in actions
    seqs = [e["seq"] for e in events_of(admin, run_id)]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


def test_an_agent_that_stops_heartbeating_is_redispatched_and_a_crashing_one_fails_alone(background_runs, stack):
    """The run is "crashing" in tests/e2e/background.py: each crash waits out its runner's lease."""
    admin = BatonClient(stack.api_url, stack.admin_key)
    run_id = background_runs["crashing"]["id"]
    wait_for(lambda: admin.get(f"/runs/{run_id}")["status"] in ("failed", "succeeded"), "the run to end", 180)
    tasks = {t["title"]: t for t in tasks_of(admin, run_id)}
    assert tasks["crash-once job"]["status"] == "done"
    assert tasks["steady job"]["status"] == "done"
    assert tasks["crash-always job"]["status"] == "failed"
    assert admin.get(f"/runs/{run_id}")["status"] == "failed"
    actions = [e["action"] for e in events_of(admin, run_id)]
    assert actions.count("job.redispatched") >= 3   # once for crash-once, twice for crash-always
    assert "task.attempts_exhausted" in actions


def test_killing_a_run_cancels_its_tasks_and_stops_dispatching(admin, stack):
    run = admin.post("/projects/e2e/runs", {"title": "to kill", "parallelism": 1,
                                             "tasks": [{"title": f"slow job {i}"} for i in range(3)]})
    run_id = run["id"]
    wait_for(lambda: any(t["status"] == "in_progress" for t in tasks_of(admin, run_id)), "a job to start")
    killed = admin.delete(f"/runs/{run_id}")
    assert killed["status"] == "killed"
    tasks = tasks_of(admin, run_id)
    assert {t["status"] for t in tasks} == {"cancelled"}
    dispatched_before = [e for e in events_of(admin, run_id) if e["action"].startswith("job.")]
    sfn = stack.services.outbox.sfn

    def stopped(arn: str) -> bool:
        described = sfn.describe(arn)
        return described is None or described["status"] != "RUNNING"

    # AWS aborts at once; moto ends a stopped execution only when its wait ends, so the kill also
    # answers every waiting token with "cancelled": either way nothing keeps running.
    for task in tasks:
        wait_for(lambda: stopped(sfn.task_execution_arn(task["id"])), "the task executions to stop", 30)
    wait_for(lambda: stopped(sfn.run_execution_arn(run_id)), "the run execution to stop", 30)
    # Nothing further is dispatched for the killed run.
    stack.threads[1].pump_once(wait_seconds=1)
    dispatched_after = [e for e in events_of(admin, run_id) if e["action"].startswith("job.")]
    assert dispatched_after == dispatched_before


def test_the_runner_refuses_a_role_config_that_drifted_from_the_pin(admin, stack):
    """A run pins role digests when it starts; if the pinned version's content changes afterwards,
    the runner refuses to work and the task is not advanced."""
    from chalicelib.agent.runner import run_job

    admin.put("/roles/dev", {"prompt": "external dev", "executor": "external", "required_proofs": [],
                             "timeout_seconds": 600, "heartbeat_seconds": 300})
    run = admin.post("/projects/e2e/runs", {"title": "drift", "deploy_gate": False, "tasks": [{"title": "t"}]})
    task = tasks_of(admin, run["id"])[0]
    wait_for(lambda: admin.get(f"/tasks/{task['id']}/context")["attempts"], "the stage job to be dispatched")
    pinned_version = admin.get(f"/tasks/{task['id']}/context")["role"]["version"]
    store = stack.services.repos.table
    from chalicelib.adapters.dynamodb import keyspace as keys

    store.client.update_item(TableName=store.name, Key={k: {"S": v} for k, v in keys.role_version(
        "dev", pinned_version).items()}, UpdateExpression="SET prompt = :p",
        ExpressionAttributeValues={":p": {"S": "tampered after the run started"}})
    job = {"job_id": "job_manual_drift", "task_id": task["id"], "stage": "dev", "attempt": 1}
    assert run_job(job, admin) == 7
    after = admin.get(f"/tasks/{task['id']}")
    assert after["stage"] == "dev" and after["status"] == "queued" and after["claimed_by"] is None
    assert not [e for e in events_of(admin, run["id"]) if e["action"] in ("task.claimed", "task.passed")]
    admin.delete(f"/runs/{run['id']}")


def test_a_job_that_cannot_be_launched_ends_in_the_dlq(background_runs, stack):
    """Launch failures are reported per record (partial batch failure); SQS redelivers, and after
    maxReceiveCount moves the message to the DLQ while the rest of the batch goes on. (When the
    stage job's heartbeat lapses first, the job is re-dispatched and the superseded message is
    dropped instead; an agent that never reports makes the task fail after its attempts — see the
    crash test above.) The run is "unlaunchable" in tests/e2e/background.py: the launcher refuses
    its project's jobs."""
    admin = BatonClient(stack.api_url, stack.admin_key)
    run = background_runs["unlaunchable"]
    sqs = stack.services.outbox.queue.client
    dlq = stack.resources.dlq_url

    def dead_letters() -> list[dict]:
        return sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])

    letters = wait_for(dead_letters, "a dispatch message in the DLQ", 120)
    task = tasks_of(admin, run["id"])[0]
    assert any(json.loads(m["Body"]).get("task_id") == task["id"] for m in letters)
    jobs = admin.get(f"/tasks/{task['id']}/context")["attempts"]
    assert jobs and all(j["status"] == "dispatched" for j in jobs)   # recorded, never launched
    # A container job is claimed for its runner when it is dispatched (its launch window is the
    # first lease); no runner ever took it over.
    assert task["claimed_by"] == jobs[0]["job_id"] and task["stage"] == "dev"
    admin.delete(f"/runs/{run['id']}")


def test_an_external_run_waits_unclaimed_for_ten_heartbeats_then_completes_when_an_agent_claims(background_runs,
                                                                                               stack):
    """Liveness (contract v1.1): the heartbeat clock starts at the claim. Nobody claims for longer
    than ten heartbeats (observed as the run's queue-timeout report, set to ten heartbeats), nothing
    fails, and an agent that then claims by run id alone works the task to the end. The run is
    "unclaimed" in tests/e2e/background.py (external roles heartbeating every second)."""
    admin = BatonClient(stack.api_url, stack.admin_key)
    run = background_runs["unclaimed"]
    reported = wait_for(lambda: [e for e in events_of(admin, run["id"])
                                 if e["action"] == "task.waiting_for_agent"], "the wait report", 120)
    assert reported[0]["data"]["waited_seconds"] >= 10            # ten heartbeats unclaimed
    task = tasks_of(admin, run["id"])[0]
    assert task["status"] == "queued" and admin.get(f"/runs/{run['id']}")["status"] == "running"
    for stage in ("dev", "qa"):
        claimed = wait_for(lambda: admin.post_status("/queue/claim", {"stage": stage, "agent_id": "person-1",
                                                                      "run_id": run["id"]})[1],
                           f"the {stage} job", 60)
        admin.post(f"/tasks/{task['id']}/advance", {"claim_id": claimed["claim"]["claim_id"], "result": "pass"})
    assert wait_for(lambda: admin.get(f"/runs/{run['id']}")["status"] == "succeeded", "the run's end", 60)
    actions = [e["action"] for e in events_of(admin, run["id"])]
    assert "task.attempts_exhausted" not in actions and "task.failed" not in actions
