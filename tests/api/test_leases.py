"""Leases through the API: an agent whose lease expired can neither heartbeat nor advance, and its
attempts change nothing. Time is a fake clock (chalicelib.domain.clock.now_iso, which the services
read), moved by hand: nothing sleeps, and no outcome depends on how fast the test runs."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain import clock
from tests.support.api import start_run
from tests.support.aws import table_snapshot
from tests.support.clock import T0


@pytest.fixture
def agents(api, project) -> dict[str, Any]:
    keys = {}
    for name in ("slow", "fast"):
        created = api.post("/keys", {"name": name, "principal": "agent", "project_ids": ["demo"]})
        assert created.status_code == 201, created.data
        keys[name] = api.as_key(created.data["key"])
    return keys


table_items = table_snapshot


def task_and_events(api, task_id: str, run_id: str) -> tuple[Any, Any]:
    return api.get(f"/tasks/{task_id}").data, api.get(f"/runs/{run_id}/events?limit=200").data["items"]


@pytest.fixture
def expired(api, services, agents, fake_clock) -> dict[str, Any]:
    """A task claimed by the slow agent with a 10 s lease, and the clock 11 s later."""
    run = start_run(api, tasks=1, stages=["dev", "qa"], deploy_gate=False)
    claimed = agents["slow"].post("/queue/claim", {"stage": "dev", "agent_id": "slow-1", "project_id": "demo",
                                                   "lease_seconds": 10})
    assert claimed.status_code == 200, claimed.data
    assert claimed.data["claim"]["expires_at"] == clock.plus_seconds(T0, 10)
    fake_clock.set(11)
    return {"run": run, "task": claimed.data["task"], "claim": claimed.data["claim"]["claim_id"]}


@pytest.mark.parametrize("path, body", [
    ("heartbeat", {}),
    ("advance", {"result": "pass", "notes": "done, honest"}),
    ("advance", {"result": "fail", "notes": "broken"}),
])
def test_an_expired_lease_gets_409_and_changes_nothing(api, services, agents, expired, path, body):
    task_id, run_id = expired["task"]["id"], expired["run"]["id"]
    task_before, events_before = task_and_events(api, task_id, run_id)
    table_before = table_items(services)
    assert task_before["status"] == "in_progress" and task_before["lease_expires_at"] < clock.now_iso()

    response = agents["slow"].post(f"/tasks/{task_id}/{path}", {"claim_id": expired["claim"], **body})

    assert response.status_code == 409, response.data
    assert response.data["error"]["code"] == "lease_expired"
    assert response.data["error"]["details"] == []
    task_after, events_after = task_and_events(api, task_id, run_id)
    assert task_after == task_before
    assert events_after == events_before
    assert table_items(services) == table_before


def test_the_lease_ends_at_its_expiry_instant(api, services, agents, fake_clock):
    run = start_run(api, tasks=1, stages=["dev"], deploy_gate=False)
    claimed = agents["slow"].post("/queue/claim", {"stage": "dev", "agent_id": "slow-1", "project_id": "demo",
                                                   "lease_seconds": 10}).data
    task_id, claim_id = claimed["task"]["id"], claimed["claim"]["claim_id"]
    fake_clock.now = clock.plus_seconds(T0, 9.999999)
    beat = agents["slow"].post(f"/tasks/{task_id}/heartbeat", {"claim_id": claim_id, "lease_seconds": 10})
    assert beat.status_code == 200, beat.data
    assert beat.data["expires_at"] == clock.plus_seconds(T0, 19.999999)
    fake_clock.now = beat.data["expires_at"]
    before = table_items(services)
    late = agents["slow"].post(f"/tasks/{task_id}/advance", {"claim_id": claim_id, "result": "pass"})
    assert late.status_code == 409 and late.data["error"]["code"] == "lease_expired"
    assert table_items(services) == before
    assert api.get(f"/runs/{run['id']}/progress").data["by_status"]["in_progress"] == 1


def test_after_expiry_another_agent_takes_the_task_and_the_old_claim_stays_dead(api, services, agents, expired):
    task_id, run_id = expired["task"]["id"], expired["run"]["id"]
    taken = agents["fast"].post("/queue/claim", {"stage": "dev", "agent_id": "fast-1", "project_id": "demo",
                                                 "lease_seconds": 60})
    assert taken.status_code == 200, taken.data
    assert taken.data["task"]["id"] == task_id and taken.data["task"]["claimed_by"] == "fast-1"
    new_claim = taken.data["claim"]["claim_id"]
    assert new_claim != expired["claim"]

    task_before, events_before = task_and_events(api, task_id, run_id)
    table_before = table_items(services)
    for path, body in (("heartbeat", {}), ("advance", {"result": "pass"}), ("advance", {"result": "fail"})):
        stale = agents["slow"].post(f"/tasks/{task_id}/{path}", {"claim_id": expired["claim"], **body})
        assert stale.status_code == 409, stale.data
        assert stale.data["error"]["code"] == "lease_not_held"
    assert task_and_events(api, task_id, run_id) == (task_before, events_before)
    assert table_items(services) == table_before

    # the live claim works (a fail: a pass at dev would also need a stored code_diff proof)
    advanced = agents["fast"].post(f"/tasks/{task_id}/advance", {"claim_id": new_claim, "result": "fail"})
    assert advanced.status_code == 200, advanced.data
    assert (advanced.data["stage"], advanced.data["status"], advanced.data["iteration"]) == ("dev", "queued", 2)
    progress = api.get(f"/runs/{run_id}/progress").data
    assert progress["by_stage"]["dev"] == 1 and progress["by_status"]["queued"] == 1
    assert progress["by_status"]["in_progress"] == 0
