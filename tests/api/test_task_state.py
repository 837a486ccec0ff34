"""Task state through the API (contract v1.1): versioned, optimistic, inline up to 200 KB and
through S3 beyond, kept across re-dispatch and loop-back, written and read by an agent only under
its live claim; bad input changes nothing."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.support.api import relax_roles, start_run
from tests.support.aws import scan_table, table_snapshot


@pytest.fixture
def claimed(api, project) -> dict[str, Any]:
    relax_roles(api)
    key = api.post("/keys", {"name": "stateful", "principal": "agent", "project_ids": ["demo"]}).data["key"]
    agent = api.as_key(key)
    run = start_run(api, tasks=1, stages=["dev", "qa"], deploy_gate=False)
    got = agent.post("/queue/claim", {"stage": "dev", "agent_id": "a", "run_id": run["id"]}).data
    return {"agent": agent, "task_id": got["task"]["id"], "claim_id": got["claim"]["claim_id"], "run": run,
            "headers": {"Baton-Claim": got["claim"]["claim_id"]}}


def put(c, name: str, body: Any, headers=None):
    return c["agent"].call("PUT", f"/tasks/{c['task_id']}/state/{name}", body,
                           headers=c["headers"] if headers is None else headers)


def test_versions_are_optimistic_and_every_one_is_kept(api, claimed, services):
    first = put(claimed, "session", {"value": {"turn": 1}, "expected_version": 0})
    assert first.status_code == 200, first.data
    assert first.data["version"] == 1 and first.data["updated_by"] == "agent:stateful"
    assert first.data["sha256"] == hashlib.sha256(b'{"turn":1}').hexdigest() and first.data["size"] == 10
    stale = put(claimed, "session", {"value": {"turn": 2}, "expected_version": 0})
    assert stale.status_code == 409 and stale.data["error"]["code"] == "version_conflict"
    assert put(claimed, "session", {"value": {"turn": 2}, "expected_version": 1}).data["version"] == 2
    assert put(claimed, "session", {"value": {"turn": 3}}).data["version"] == 3       # last writer wins
    read = claimed["agent"].get(f"/tasks/{claimed['task_id']}/state/session", headers=claimed["headers"])
    assert read.data["value"] == {"turn": 3} and read.data["version"] == 3
    history = sorted(i["sk"]["S"] for i in scan_table(services, services.settings.table_name)
                     if i["sk"]["S"].startswith("STATEV#session#"))
    assert history == [f"STATEV#session#{v:09d}" for v in (1, 2, 3)]


def test_names_with_slashes_list_by_prefix(api, claimed):
    for name in ("lg%2Fcheckpoints%2Fa", "lg%2Fcheckpoints%2Fb", "goose%2Fsession"):
        assert put(claimed, name, {"value": [1, 2]}).status_code == 200
    listed = claimed["agent"].get(f"/tasks/{claimed['task_id']}/state?prefix=lg/", headers=claimed["headers"]).data
    assert [i["name"] for i in listed["items"]] == ["lg/checkpoints/a", "lg/checkpoints/b"]
    assert "value" not in listed["items"][0]


def test_a_deleted_name_reads_as_absent_and_can_be_created_again(api, claimed):
    put(claimed, "scratch", {"value": "x"})
    gone = claimed["agent"].call("DELETE", f"/tasks/{claimed['task_id']}/state/scratch?expected_version=1",
                                 headers=claimed["headers"])
    assert gone.status_code == 200 and gone.data["version"] == 2
    assert claimed["agent"].get(f"/tasks/{claimed['task_id']}/state/scratch", headers=claimed["headers"]).status_code == 404
    again = put(claimed, "scratch", {"value": "y", "expected_version": 0})
    assert again.status_code == 200 and again.data["version"] == 3


def test_state_survives_a_loop_back_and_the_next_claim(api, claimed):
    put(claimed, "memory", {"value": {"learned": "the parser is slow"}})
    moved = claimed["agent"].post(f"/tasks/{claimed['task_id']}/advance", {"claim_id": claimed["claim_id"],
                                                                           "result": "fail"})
    assert moved.status_code == 200 and moved.data["iteration"] == 2
    stale = claimed["agent"].get(f"/tasks/{claimed['task_id']}/state/memory", headers=claimed["headers"])
    assert stale.status_code == 409 and stale.data["error"]["code"] == "claim_not_held"   # that claim ended
    again = claimed["agent"].post("/queue/claim", {"stage": "dev", "agent_id": "a", "run_id": claimed["run"]["id"]})
    read = claimed["agent"].get(f"/tasks/{claimed['task_id']}/state/memory",
                                headers={"Baton-Claim": again.data["claim"]["claim_id"]})
    assert read.status_code == 200 and read.data["value"] == {"learned": "the parser is slow"}
    assert api.get(f"/tasks/{claimed['task_id']}/state/memory").status_code == 200   # a person reads it any time


def test_a_large_value_goes_through_s3_and_is_checked(api, claimed, services):
    body = json.dumps({"blob": "x" * 300_000}).encode()
    digest = hashlib.sha256(body).hexdigest()
    inline = put(claimed, "big", {"value": {"blob": "x" * 210_000}})
    assert inline.status_code in (400, 413)
    asked = claimed["agent"].post(f"/tasks/{claimed['task_id']}/state/big/upload",
                                  {"size": len(body), "sha256": digest, "content_type": "application/json"},
                                  headers=claimed["headers"])
    assert asked.status_code == 201, asked.data
    fields = asked.data["upload"]["fields"]
    services.proofs.objects.client.put_object(Bucket=services.settings.bucket, Key=fields["key"], Body=body,
                                              ContentType="application/json")
    confirmed = claimed["agent"].post(f"/tasks/{claimed['task_id']}/state/big/confirm", {},
                                      headers=claimed["headers"])
    assert confirmed.status_code == 200, confirmed.data
    assert confirmed.data["stored"] == "s3" and confirmed.data["version"] == 1 and confirmed.data["size"] == len(body)
    read = claimed["agent"].get(f"/tasks/{claimed['task_id']}/state/big", headers=claimed["headers"]).data
    assert read["value"] is None and read["download_url"].startswith("http")
    # A wrong checksum is refused and the object removed.
    asked = claimed["agent"].post(f"/tasks/{claimed['task_id']}/state/big2/upload",
                                  {"size": len(body), "sha256": "0" * 64}, headers=claimed["headers"]).data
    services.proofs.objects.client.put_object(Bucket=services.settings.bucket, Key=asked["upload"]["fields"]["key"],
                                              Body=body, ContentType="application/json")
    bad = claimed["agent"].post(f"/tasks/{claimed['task_id']}/state/big2/confirm", {}, headers=claimed["headers"])
    assert bad.status_code == 422 and bad.data["error"]["code"] == "checksum_mismatch"
    assert claimed["agent"].get(f"/tasks/{claimed['task_id']}/state/big2", headers=claimed["headers"]).status_code == 404


@pytest.mark.parametrize("name", ["..%2Fescape", "a..b", "%2Flead", "trail%2F", "sp%20ace", "x" * 201, "a%2F%2Fb"])
def test_bad_names_are_refused_and_change_nothing(api, claimed, services, name):
    before = table_snapshot(services)
    response = put(claimed, name, {"value": 1})
    assert response.status_code == 400, response.data
    assert table_snapshot(services) == before


@pytest.mark.parametrize("body", [{}, {"value": 1, "expected_version": -1}, {"value": 1, "extra": True},
                                  {"value": 1, "expected_version": "1"}])
def test_bad_bodies_are_refused_and_change_nothing(api, claimed, services, body):
    before = table_snapshot(services)
    assert put(claimed, "ok", body).status_code == 400
    assert table_snapshot(services) == before


def test_an_agent_without_its_claim_neither_reads_nor_writes(api, claimed, services):
    before = table_snapshot(services)
    assert put(claimed, "x", {"value": 1}, headers={}).status_code == 409
    assert claimed["agent"].get(f"/tasks/{claimed['task_id']}/state/x").status_code == 409
    assert table_snapshot(services) == before
