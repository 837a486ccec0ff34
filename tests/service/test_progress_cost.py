"""Run progress is read from counters on the run item: one GetItem, whatever the run's size, and the
counters follow every task move. (The same read over HTTP: ``tests/api/test_progress_cost.py``.)"""

from __future__ import annotations

from collections import Counter

from chalicelib.domain.enums import Stage, TaskStatus
from chalicelib.domain.requests import AdvanceRequest, ClaimRequest, SetStageRequest
from tests.support.big_run import TASKS, big_run, linear_transactions, parse  # noqa: F401  (fixtures)
from tests.support.round_trips import dynamodb_operations as dynamodb_calls


def recount(services, run_id: str) -> tuple[Counter, Counter]:
    tasks = list(services.repos.tasks.of_run(run_id))
    return Counter(t.stage.value for t in tasks), Counter(t.status.value for t in tasks)


def test_the_hook_counts_calls(services):
    with dynamodb_calls(services.repos.client) as calls:
        services.repos.projects.get("nope")
        services.repos.audit.events_after("run_X", 0, 5)
    assert calls == ["GetItem", "Query"]


def test_progress_of_a_thousand_tasks_is_one_getitem(services, big_run):
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
