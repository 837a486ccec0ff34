"""Killing a big run answers at once: the kill is one transaction whatever the run's size, the
dispatcher cancels the open tasks in the background (a batch per queue message), and no job of a
killed run is launched afterwards. Step Functions mode on in-process moto (its executions are not
needed: their callbacks stay in the outbox)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from chalicelib import bootstrap
from chalicelib.services import dispatch as dispatch_module
from tests.support.api import Api
from tests.support.aws import moto_services
from tests.support.round_trips import dynamodb_calls


class RecordingLauncher:
    def __init__(self) -> None:
        self.launched: list[dict[str, Any]] = []

    def launch(self, spec: dict[str, Any]) -> str:
        self.launched.append(spec)
        return f"local-{len(self.launched)}"


@pytest.fixture
def sfn_api():
    from chalice.test import Client

    import app as app_module

    with moto_services() as plain:
        sqs = bootstrap.client("sqs", plain.settings)
        url = sqs.create_queue(QueueName="baton-test-dispatch")["QueueUrl"]
        machine = "arn:aws:states:us-east-1:123456789012:stateMachine:baton-test-{}"
        settings = dataclasses.replace(plain.settings, orchestration="stepfunctions", dispatch_queue_url=url,
                                       task_state_machine_arn=machine.format("task"),
                                       run_state_machine_arn=machine.format("run"))
        launcher = RecordingLauncher()
        services = bootstrap.build_services(settings, launcher=launcher)
        bootstrap.reset_services(services)
        key = services.keys.bootstrap_admin()[1]
        with Client(app_module.app) as client:
            yield Api(client, key), services, sqs, url, launcher


def queued_messages(sqs: Any, url: str) -> list[dict[str, Any]]:
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_a_kill_is_one_transaction_and_the_dispatcher_cancels_the_rest(sfn_api, monkeypatch):
    api, services, sqs, url, launcher = sfn_api
    monkeypatch.setattr(dispatch_module, "CANCEL_BATCH", 40)
    api.post("/projects", {"id": "demo", "name": "Demo", "repository_url": "https://example.com/demo.git"})
    run = api.post("/projects/demo/runs", {"title": "big", "stages": ["dev"],
                                           "tasks": [{"title": f"t{i}"} for i in range(100)]}).data
    queued_messages(sqs, url)                                           # the run's fill request
    with dynamodb_calls(services.repos.client) as calls:
        killed = api.delete(f"/runs/{run['id']}")
    assert killed.status_code == 200 and killed.data["status"] == "killed"
    assert len(calls) <= 6, [op for op, _ in calls]                     # no per-task work in the request
    assert api.get(f"/runs/{run['id']}").data["progress"]["by_status"]["cancelled"] == 0
    rounds = 0
    while True:
        messages = [m for m in queued_messages(sqs, url) if m.get("kind") == "cancel"]
        if not messages:
            break
        for message in messages:
            services.dispatch.handle(message)
        rounds += 1
    assert rounds == 3                                                   # 100 tasks, 40 per message
    progress = api.get(f"/runs/{run['id']}").data["progress"]
    assert progress["by_status"]["cancelled"] == 100 and progress["percent_complete"] == 100.0


def test_no_job_of_a_killed_run_is_launched(sfn_api):
    api, services, sqs, url, launcher = sfn_api
    api.post("/projects", {"id": "demo", "name": "Demo", "repository_url": "https://example.com/demo.git"})
    current = api.get("/roles/dev").data
    api.call("PUT", "/roles/dev", {**{k: current[k] for k in ("prompt", "timeout_seconds", "heartbeat_seconds")},
                                   "executor": "container", "command": "true", "required_proofs": []})
    run = api.post("/projects/demo/runs", {"title": "small", "stages": ["dev"], "tasks": [{"title": "one"}]}).data
    task = api.get(f"/runs/{run['id']}/tasks").data["items"][0]
    services.dispatch.handle({"kind": "fill", "run_id": run["id"]})     # the task starts (its execution)
    assert api.delete(f"/runs/{run['id']}").data["status"] == "killed"
    # The execution's first stage message arrives after the kill, before the background cancel.
    services.dispatch.handle({"kind": "stage", "task_id": task["id"], "dispatch": 1, "attempt": 1, "token": "tok"})
    assert launcher.launched == []
    for message in queued_messages(sqs, url):
        if message.get("kind") == "cancel":
            services.dispatch.handle(message)
    assert api.get(f"/tasks/{task['id']}").data["status"] == "cancelled"
    assert launcher.launched == []
