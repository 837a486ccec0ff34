"""A durable local stack, for real: a stack with a state directory is stopped in the middle of a run
and a second one started on the same directory (as ``make up`` twice). Everything comes back: the
items of every table, the proof (downloaded byte-identical through a presigned URL of the new moto),
the admin key (the same one, and it works), and a dispatch message that was still queued when the
first stack stopped is delivered by the second.

Two stacks of this module's own, one after the other, not the tier's shared ``stack``: so it runs
with the tests that do not use the stack, before it starts (tests/e2e/conftest.py). The stacks are
moto servers of this process, whose backends are the process's: between the two, moto is reset, as a
new ``make up`` process starts with an empty moto.
"""

from __future__ import annotations

import hashlib
import urllib.request
import uuid
from typing import Any

import pytest

from chalicelib.agent.client import BatonClient
from chalicelib.local import snapshot as snapshots
from chalicelib.local.stack import LocalStack, describe_state, free_port
from tests.support.waiting import wait_for

PROOF = bytes(range(256)) * 16 + b"\x00 binary, with NULs: byte-identical or not at all"
EXTERNAL = {"prompt": "external", "executor": "external", "required_proofs": [], "timeout_seconds": 600,
            "heartbeat_seconds": 300}


def durable_stack(state_dir, workdir, api_port: int) -> LocalStack:
    return LocalStack(workdir=workdir, prefix="baton-durable", api_port=api_port, visibility_timeout=5,
                      sweep_seconds=1, write_config=False, state_dir=state_dir, snapshot_grace_seconds=3)


def reset_moto() -> None:
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


def claim(agent: BatonClient, stage: str, run_id: str) -> tuple[str, str]:
    """(task id, claim id) of the next task of the run at the stage, once there is one."""
    def claimed() -> Any:
        status, body = agent.post_status("/queue/claim", {"stage": stage, "agent_id": "agent-1", "run_id": run_id})
        return body if status == 200 else None

    body = wait_for(claimed, f"a task to claim at {stage}", 30)
    return body["task"]["id"], body["claim"]["claim_id"]


def upload(form: dict[str, Any], data: bytes) -> None:
    boundary = "----baton" + uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in form["fields"].items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="shot.png"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    request = urllib.request.Request(form["url"], data=b"".join(parts), method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=10) as response:  # nosec B310  # the local moto's URL
        assert response.status in (200, 201, 204)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # nosec B310  # the local moto's URL
        return response.read()


def keys_of(stack: LocalStack, table: str) -> set[tuple]:
    rows = snapshots.scan_items(stack.services.repos.client, table)
    return {tuple(sorted((name, str(value)) for name, value in row.items() if name in ("pk", "sk", "id")))
            for row in rows}


def test_a_stopped_stack_starts_again_with_its_items_proofs_keys_and_queued_messages(tmp_path):
    state, api_port = tmp_path / "state", free_port()
    first = durable_stack(state, tmp_path / "one", api_port).start()
    try:
        assert first.restored is None and first.fresh is False
        admin_key = first.admin_key
        admin = BatonClient(first.api_url, admin_key)
        for role in ("dev", "qa"):
            admin.put(f"/roles/{role}", {**EXTERNAL, "prompt": f"external {role}"})
        admin.post("/projects", {"id": "durable", "name": "Durable", "repository_url": "/srv/durable.git"})
        agent = BatonClient(first.api_url, admin.post("/keys", {"name": "agent", "principal": "agent",
                                                                "project_ids": ["durable"]})["key"])
        run = admin.post("/projects/durable/runs", {"title": "in flight", "deploy_gate": False, "parallelism": 2,
                                                    "stages": ["dev", "qa"],
                                                    "tasks": [{"title": "moves on"}, {"title": "stays"}]})
        # One task through dev to qa, claimed there with a proof; the other left queued at dev.
        moving, dev_claim = claim(agent, "dev", run["id"])
        agent.post(f"/tasks/{moving}/advance", {"claim_id": dev_claim, "result": "pass"})
        at_qa, qa_claim = claim(agent, "qa", run["id"])
        assert at_qa == moving
        declared = agent.for_claim(qa_claim).post(f"/tasks/{moving}/proofs", {
            "type": "screenshot", "filename": "shot.png", "content_type": "image/png", "size": len(PROOF),
            "sha256": hashlib.sha256(PROOF).hexdigest()})
        upload(declared["upload"], PROOF)
        proof = agent.for_claim(qa_claim).post(f"/proofs/{declared['proof']['id']}/confirm")
        assert proof["status"] == "stored"
        wait_for(lambda: any(t["stage"] == "dev" and t["status"] == "queued"
                             for t in admin.get(f"/runs/{run['id']}/tasks")["items"]), "the other task at dev", 30)
        tasks_before = {t["id"]: (t["stage"], t["status"]) for t in admin.get(f"/runs/{run['id']}/tasks")["items"]}
        events_before = admin.get(f"/runs/{run['id']}/events?limit=200")["items"]

        # The pump stops: the next run's dispatch messages stay queued, and are saved as such.
        pump = first.threads[1]
        pump.stopping.set()
        pump.join(timeout=10)
        queued = admin.post("/projects/durable/runs", {"title": "queued", "deploy_gate": False, "stages": ["dev"],
                                                       "tasks": [{"title": "dispatched after the restart"}]})
        sqs = first.services.outbox.queue.client
        wait_for(lambda: int(sqs.get_queue_attributes(QueueUrl=first.resources.dispatch_queue_url, AttributeNames=[
            "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"]), "a queued message", 10)
        tables = [first.resources.table_name, first.resources.idempotency_table_name]
    finally:
        first.stop()
    saved = first.saved
    assert saved is not None and saved.messages >= 1 and saved.versions == 1 and not saved.warnings
    snapshot = snapshots.load(state)
    assert snapshot.admin_key == admin_key and set(tables) <= set(snapshot.tables)
    assert snapshot.tables[first.resources.idempotency_table_name] > 0
    saved_keys = {table: {tuple(sorted((n, str(v)) for n, v in item.items() if n in ("pk", "sk", "id")))
                          for item in snapshot.items(table)} for table in tables}

    reset_moto()   # a new process starts with an empty moto
    second = durable_stack(state, tmp_path / "two", api_port).start()
    try:
        assert second.moto_port != first.moto_port
        assert second.restored is not None and second.restored.items == saved.items
        assert second.admin_key == admin_key                                       # the printed key is the same
        # moto's executions were not saved: the reconciler restarts the two runs' and the two started
        # tasks' (the queued run's task has not started: its fill message is still queued).
        assert second.reconciled == 4
        assert any("restarted the executions of 4 task(s)/gate(s)" in line for line in describe_state(second))
        admin = BatonClient(second.api_url, second.admin_key)
        assert admin.get("/projects/durable")["name"] == "Durable"                 # ... and it works
        for table in tables:                                                      # every item is back
            assert saved_keys[table] <= keys_of(second, table), table
        tasks_after = {t["id"]: (t["stage"], t["status"]) for t in admin.get(f"/runs/{run['id']}/tasks")["items"]}
        assert tasks_after == tasks_before
        assert admin.get(f"/runs/{run['id']}/events?limit=200")["items"][:len(events_before)] == events_before
        text = admin.get(f"/proofs/{proof['id']}/text")
        assert str(second.moto_port) in text["download_url"]
        assert fetch(text["download_url"]) == PROOF                                # byte-identical, from the new moto
        # The agent's key is back too, and its claim: it goes on at qa.
        agent = BatonClient(second.api_url, agent.api_key)
        assert agent.post(f"/tasks/{moving}/advance", {"claim_id": qa_claim, "result": "pass"})["stage"] == "complete"
        # The message queued at the stop is delivered: the queued run's task is dispatched and claimable.
        dispatched, _ = claim(agent, "dev", queued["id"])
        assert dispatched == admin.get(f"/runs/{queued['id']}/tasks")["items"][0]["id"]
        # The run that was in flight completes: its other task goes on from dev, through its restarted
        # execution, and the run's restarted execution ends with it.
        staying, claim_id = claim(agent, "dev", run["id"])
        agent.post(f"/tasks/{staying}/advance", {"claim_id": claim_id, "result": "pass"})
        again, claim_id = claim(agent, "qa", run["id"])
        assert again == staying
        agent.post(f"/tasks/{staying}/advance", {"claim_id": claim_id, "result": "pass"})
        wait_for(lambda: admin.get(f"/runs/{run['id']}")["status"] == "succeeded", "the run to succeed", 30)
        sfn = second.services.outbox.sfn
        run_item = second.services.repos.runs.get_item(run["id"])
        wait_for(lambda: (sfn.describe(sfn.run_execution_arn(run_item["execution"])) or {}).get("status")
                 == "SUCCEEDED", "the restarted run execution to end", 30)
        actions = [e["action"] for e in admin.get(f"/runs/{run['id']}/events?limit=200")["items"]]
        assert actions.count("task.execution_restarted") == 2 and actions.count("run.execution_restarted") == 1
    finally:
        try:
            second.stop()
        finally:
            reset_moto()
    assert snapshots.load(state).path == second.saved.path


def test_a_stack_does_not_start_on_a_snapshot_it_cannot_load_and_starts_empty_only_when_asked(tmp_path):
    state = tmp_path / "state"
    with snapshots.SnapshotWriter(state) as writer:
        writer.table("baton-durable", [{"pk": {"S": "x"}, "sk": {"S": "y"}}])
        broken = writer.commit()
    (broken / "tables" / "baton-durable.jsonl").write_text("")
    refused = durable_stack(state, tmp_path / "one", free_port())
    with pytest.raises(snapshots.SnapshotError, match="baton-durable.jsonl does not match its checksum"):
        refused.start()
    refused.stop()
    assert refused.moto is None and refused.saved is None             # nothing started, nothing saved over it
    assert snapshots.current_name(state) == broken.name
    fresh = durable_stack(state, tmp_path / "two", free_port())
    fresh.fresh = True
    try:
        fresh.start()
        assert fresh.restored is None
        assert BatonClient(fresh.api_url, fresh.admin_key).get("/projects")["items"] == []
    finally:
        try:
            fresh.stop()
        finally:
            reset_moto()
    # Its state replaced the broken one, which is kept as the previous snapshot.
    assert snapshots.load(state).path == fresh.saved.path
    assert sorted(p.name for p in state.iterdir()) == sorted([snapshots.CURRENT, snapshots.LOCK, broken.name,
                                                              fresh.saved.path.name])
