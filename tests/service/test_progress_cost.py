"""Run progress is read from counters on the run item: one GetItem, whatever the run's size, and the
counters follow every task move."""

from __future__ import annotations

import json
from collections import Counter
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from chalicelib.domain.enums import Stage, TaskStatus
from chalicelib.domain.requests import AdvanceRequest, ClaimRequest, ProjectCreate, RunCreate, SetStageRequest
from chalicelib.local.moto_fidelity import atomic_transactions

TASKS = 1000


@contextmanager
def dynamodb_calls(client: Any) -> Iterator[list[str]]:
    """The DynamoDB operations ``client`` makes inside the block, in order."""
    calls: list[str] = []

    def count(event_name: str, **_: Any) -> None:
        calls.append(event_name.rsplit(".", 1)[-1])

    client.meta.events.register("before-call.dynamodb.*", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", count)


def parse(model: Any, **body: Any) -> Any:
    return model.model_validate_json(json.dumps(body))


@pytest.fixture(autouse=True)
def linear_transactions() -> Iterator[None]:
    """moto copies the whole table once per item of a transaction: writing 1,000 tasks in
    transactions of 100 would take a minute (see chalicelib/local/moto_fidelity.py)."""
    with atomic_transactions():
        yield


@pytest.fixture
def big_run(services, admin_key) -> tuple[Any, Any]:
    admin = services.keys.authenticate("Bearer " + admin_key)
    services.projects.create(admin, ProjectCreate(id="big", name="Big", repository_url="https://example.com/b.git"))
    run = services.runs.start(admin, "big", parse(RunCreate, title="a thousand tasks", stages=["dev", "qa", "sec"],
                                                 deploy_gate=False,
                                                 tasks=[{"title": f"task {i}"} for i in range(TASKS)]))
    return admin, run


def recount(services, run_id: str) -> tuple[Counter, Counter]:
    tasks = list(services.repos.tasks.of_run(run_id))
    return Counter(t.stage.value for t in tasks), Counter(t.status.value for t in tasks)


def test_the_hook_counts_calls(services):
    with dynamodb_calls(services.repos.client) as calls:
        services.repos.projects.get("nope")
        services.repos.audit.events_after("run_X", 0, 5)
    assert calls == ["GetItem", "Query"]


def test_progress_of_a_thousand_tasks_is_one_getitem(api, services, big_run):
    admin, run = big_run
    with dynamodb_calls(services.repos.client) as calls:
        progress = services.runs.progress(admin, run.id)
    assert calls == ["GetItem"]
    assert progress.total == TASKS
    assert {k: v for k, v in progress.by_stage.items() if v} == {"dev": TASKS}
    assert {k: v for k, v in progress.by_status.items() if v} == {"queued": TASKS}
    assert set(progress.by_stage) == {"dev", "qa", "sec", "docs", "cicd", "complete"}
    assert set(progress.by_status) == {s.value for s in TaskStatus}
    assert progress.percent_complete == 0.0
    stages, statuses = recount(services, run.id)
    assert stages == Counter({"dev": TASKS}) and statuses == Counter({"queued": TASKS})

    # over HTTP: the bearer key's lookup, then the same single read
    with dynamodb_calls(services.repos.client) as calls:
        response = api.get(f"/runs/{run.id}/progress")
    assert response.status_code == 200, response.data
    assert calls == ["GetItem", "GetItem"]
    assert response.data == progress.model_dump(mode="json")


def test_the_counters_follow_claims_advances_and_stage_changes(services, big_run):
    admin, run = big_run
    claims = []
    for n in range(5):
        task, claim = services.tasks.claim(admin, parse(ClaimRequest, stage="dev", agent_id=f"agent-{n}",
                                                        project_id="big"))
        claims.append((task.id, claim.claim_id))
    progress = services.runs.progress(admin, run.id)
    assert (progress.by_status["queued"], progress.by_status["in_progress"]) == (TASKS - 5, 5)
    assert progress.by_stage["dev"] == TASKS

    (p1, c1), (p2, c2), (f1, cf), (s1, _), (kept, _) = claims
    for task_id, claim_id in ((p1, c1), (p2, c2)):
        moved = services.tasks.advance(admin, task_id, parse(AdvanceRequest, claim_id=claim_id, result="pass"))
        assert (moved.stage, moved.status) == (Stage.qa, TaskStatus.queued)
    looped = services.tasks.advance(admin, f1, parse(AdvanceRequest, claim_id=cf, result="fail"))
    assert (looped.stage, looped.status, looped.iteration) == (Stage.dev, TaskStatus.queued, 2)
    finished = services.tasks.set_stage(admin, s1, parse(SetStageRequest, stage="complete", reason="done by hand"))
    assert (finished.stage, finished.status) == (Stage.complete, TaskStatus.done)

    with dynamodb_calls(services.repos.client) as calls:
        progress = services.runs.progress(admin, run.id)
    assert calls == ["GetItem"]
    assert progress.total == TASKS
    assert {k: v for k, v in progress.by_stage.items() if v} == {"dev": TASKS - 3, "qa": 2, "complete": 1}
    assert {k: v for k, v in progress.by_status.items() if v} == {"queued": TASKS - 2, "in_progress": 1, "done": 1}
    assert progress.percent_complete == 0.1
    stages, statuses = recount(services, run.id)
    assert stages == Counter({k: v for k, v in progress.by_stage.items() if v})
    assert statuses == Counter({k: v for k, v in progress.by_status.items() if v})
    assert services.repos.tasks.get(kept).status == TaskStatus.in_progress
