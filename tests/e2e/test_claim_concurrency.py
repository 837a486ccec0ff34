"""Claims under contention.

* Real threads against moto in server mode (``ThreadedMotoServer``; moto in-process is not meant
  for threads): 20 agents drain a run (40 tasks; 200 with BATON_RACE_TASKS=200); every task is
  claimed exactly once, and the run's counters agree.
* Deterministic races, no threads: two claimers read the same candidate, both write; exactly one
  wins, the other gets a ConflictError (or, through ``claim``, moves on to the next candidate).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any, Iterator

import pytest
from moto.server import ThreadedMotoServer

from chalicelib.bootstrap import build_services
from chalicelib.config import Settings
from chalicelib.domain import clock, pipeline
from chalicelib.domain.errors import ConflictError
from chalicelib.domain.enums import Stage, TaskStatus
from chalicelib.domain.requests import ClaimRequest, ProjectCreate, RunCreate
from chalicelib.domain.progress import counter_deltas
from chalicelib.local.resources import create_table
from chalicelib.local.moto_fidelity import patched_moto

THREADS = 20
# 200 tasks take about a minute on moto: with 20 claimers on one queue each claim costs ~15
# TransactWriteItems attempts (they all go for the same candidates, and every task change in a run
# also conditions on the run's event_seq). The suite drains 40 by default; BATON_RACE_TASKS=200
# runs the full size. The contention (20 threads on one queue) is the same either way.
TASKS = int(os.environ.get("BATON_RACE_TASKS", "40"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_services() -> Iterator[Any]:
    """Services whose boto3 clients talk HTTP to a moto server of their own, on a unique table.

    moto's transactions are neither isolated nor cheap under threads (see chalicelib/local/moto_fidelity.py):
    without ``patched_moto`` (its atomic transactions) this test measures moto's lost updates, not Baton's claims.
    """
    logging.getLogger("werkzeug").setLevel(logging.WARNING)   # one line per request otherwise
    with ExitStack() as stack:
        stack.enter_context(patched_moto())
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        stack.callback(server.stop)
        url = f"http://127.0.0.1:{port}"
        saved = os.environ.get("AWS_ENDPOINT_URL")
        os.environ["AWS_ENDPOINT_URL"] = url       # botocore reads it when a client is created
        try:
            settings = dataclasses.replace(Settings.from_env(), table_name=f"baton-race-{uuid.uuid4().hex[:8]}",
                                           orchestration="plain")
            services = build_services(settings)
        finally:
            if saved is None:
                os.environ.pop("AWS_ENDPOINT_URL", None)
            else:
                os.environ["AWS_ENDPOINT_URL"] = saved
        assert services.repos.client.meta.endpoint_url == url
        create_table(services.repos.client, settings.table_name)
        yield services


@pytest.fixture(scope="module")
def admin(server_services) -> Any:
    return server_services.keys.authenticate("Bearer " + server_services.keys.bootstrap_admin()[1])


def make_run(services: Any, admin: Any, project_id: str, tasks: int, stages: list[str]) -> Any:
    if services.repos.projects.get(project_id) is None:
        services.projects.create(admin, ProjectCreate(id=project_id, name=project_id,
                                                      repository_url=f"https://example.com/{project_id}.git"))
    body = {"title": f"{tasks} tasks", "stages": stages, "deploy_gate": False,
            "tasks": [{"title": f"task {i}", "priority": 5} for i in range(tasks)]}
    return services.runs.start(admin, project_id, RunCreate.model_validate_json(json.dumps(body)))


def claim_request(agent_id: str, project_id: str, stage: str = "dev") -> ClaimRequest:
    return ClaimRequest.model_validate_json(json.dumps({"stage": stage, "agent_id": agent_id,
                                                        "project_id": project_id}))


def all_events(services: Any, run_id: str) -> list[Any]:
    events, after = [], 0
    while True:
        page = services.repos.audit.events_after(run_id, after, 200)
        events += page
        if len(page) < 200:
            return events
        after = page[-1].seq


# --------------------------------------------------------------------------- real threads


def test_twenty_agents_drain_the_queue_without_a_double_claim(server_services, admin):
    services = server_services
    run = make_run(services, admin, "race", TASKS, ["dev", "qa"])
    start = threading.Barrier(THREADS)

    def agent(n: int) -> list[tuple[str, str, str]]:
        mine = []
        request = claim_request(f"agent-{n:02d}", "race")
        start.wait()
        while True:
            claimed = services.tasks.claim(admin, request)
            if claimed is None:
                return mine
            task, claim = claimed
            mine.append((task.id, claim.claim_id, request.agent_id))

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = [f.result() for f in [pool.submit(agent, n) for n in range(THREADS)]]

    claims = [c for mine in results for c in mine]
    counts = Counter(task_id for task_id, _, _ in claims)
    doubles = {task_id: n for task_id, n in counts.items() if n > 1}
    assert doubles == {}, f"{len(doubles)} tasks were claimed twice"
    stored = {t.id: t for t in services.repos.tasks.of_run(run.id)}
    assert len(stored) == TASKS
    # A task claimed in the table that no claimer was told about would be an orphaned claim (a
    # write that succeeded while its caller saw a failure).
    assert set(counts) == set(stored), "every task claimed exactly once, and each claimer told"
    assert sum(1 for mine in results if mine) > 1, "the work was actually shared between threads"

    # the store agrees with what each claimer was told
    for task_id, claim_id, agent_id in claims:
        task = stored[task_id]
        assert (task.status, task.stage) == (TaskStatus.in_progress, Stage.dev)
        assert (task.claim_id, task.claimed_by) == (claim_id, agent_id)
        assert task.version == 2

    progress = services.runs.progress(admin, run.id)
    assert progress.total == TASKS
    assert progress.by_status["in_progress"] == TASKS
    assert progress.by_status["queued"] == 0
    assert progress.by_stage["dev"] == TASKS

    # one audit event per claim, with gapless sequence numbers
    events = all_events(services, run.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    claimed_events = Counter(e.entity for e in events if e.action == "task.claimed")
    assert claimed_events == Counter({f"task:{task_id}": 1 for task_id in stored})
    assert services.tasks.claim(admin, claim_request("late", "race")) is None


# --------------------------------------------------------------------------- deterministic races


def test_two_claimers_of_one_read_exactly_one_wins(server_services, admin):
    services = server_services
    run = make_run(services, admin, "duel", 1, ["dev"])
    (only,) = list(services.repos.tasks.of_run(run.id))
    first_read = services.repos.tasks.get(only.id)
    second_read = services.repos.tasks.get(only.id)
    assert first_read == second_read

    task, claim = services.tasks._claim_one(admin, first_read, claim_request("winner", "duel"))
    assert task.claimed_by == "winner"
    before = services.repos.tasks.get(only.id)
    events_before = all_events(services, run.id)
    with pytest.raises(ConflictError):
        services.tasks._claim_one(admin, second_read, claim_request("loser", "duel"))

    after = services.repos.tasks.get(only.id)
    assert after == before
    assert (after.claimed_by, after.claim_id, after.version) == ("winner", claim.claim_id, 2)
    assert all_events(services, run.id) == events_before
    assert services.runs.progress(admin, run.id).by_status["in_progress"] == 1


def test_the_store_applies_only_the_first_of_two_writes_from_the_same_read(server_services, admin):
    services = server_services
    repos = services.repos
    run = make_run(services, admin, "duel", 1, ["dev"])
    (read,) = list(repos.tasks.of_run(run.id))
    now = clock.now_iso()
    results = []
    for agent in ("a", "b"):
        after, transition = pipeline.claim(read, stage=Stage.dev, agent_id=agent, claim_id=f"clm_{agent}",
                                           now=now, lease_seconds=60)
        try:
            repos.audit.commit(run_id=run.id, actor="test", action=transition.action, entity=f"task:{read.id}",
                               data={"agent_id": agent}, operations=[repos.tasks.replace_op(after, read.version)],
                               counters=counter_deltas(transition))
            results.append(agent)
        except ConflictError as error:
            assert error.code == "stale_version"
            results.append("conflict")
    assert results == ["a", "conflict"]
    stored = repos.tasks.get(read.id)
    assert (stored.claimed_by, stored.claim_id, stored.version) == ("a", "clm_a", read.version + 1)
    progress = services.runs.progress(admin, run.id)
    assert (progress.by_status["queued"], progress.by_status["in_progress"]) == (0, 1)
    assert [e.action for e in all_events(services, run.id)][-1] == "task.claimed"
    assert sum(e.action == "task.claimed" for e in all_events(services, run.id)) == 1


def test_a_claimer_that_loses_the_race_takes_the_next_candidate(server_services, admin, monkeypatch):
    services = server_services
    run = make_run(services, admin, "relay", 2, ["dev"])
    request = claim_request("loser", "relay")
    # Both claimers read the queue before either writes: the loser's view is taken first.
    stale_view = services.repos.tasks.queued("relay", "dev", 10)
    assert len(stale_view) == 2
    won_task, _ = services.tasks.claim(admin, claim_request("winner", "relay"))
    other = next(t for t in stale_view if t.id != won_task.id)

    # The loser still sees both (equal priority: tried in either order); whichever it tries
    # first, it must end up with the one the winner did not take.
    monkeypatch.setattr(services.repos.tasks, "queued", lambda *a, **kw: list(stale_view))
    claimed = services.tasks.claim(admin, request)
    assert claimed is not None
    task, _ = claimed
    assert task.id == other.id and task.claimed_by == "loser"
    monkeypatch.undo()
    stored = {t.id: t for t in services.repos.tasks.of_run(run.id)}
    assert stored[won_task.id].claimed_by == "winner"
    assert stored[other.id].claimed_by == "loser"
    assert services.runs.progress(admin, run.id).by_status["in_progress"] == 2
