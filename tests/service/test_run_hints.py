"""A commit starts from the run as this process last committed it (``RunHints``): no read when the
run has not changed since, and when it has (another process committed), the cancelled transaction
hands back the run as it is and the commit goes on from that: never a gap or a repeat in the
event sequence, never a decision taken on a run that is no longer so."""

from __future__ import annotations

from chalicelib.adapters.dynamodb import AuditLog
from chalicelib.domain.enums import TaskStatus
from chalicelib.domain.requests import ClaimRequest, ProjectCreate, RunCreate
from tests.support.big_run import parse
from tests.support.round_trips import dynamodb_operations as dynamodb_calls


def start_run(services, admin_key, tasks: int = 3):
    admin = services.keys.authenticate("Bearer " + admin_key)
    services.projects.create(admin, ProjectCreate(id="hints", name="Hints", repository_url="https://example.com/h.git"))
    run = services.runs.start(admin, "hints", parse(RunCreate, title="hinted", stages=["dev", "qa"],
                                                  deploy_gate=False,
                                                  tasks=[{"title": f"task {i}"} for i in range(tasks)]))
    return admin, run


def claim(services, admin, run_id: str):
    return services.tasks.claim(admin, parse(ClaimRequest, stage="dev", agent_id="a", run_id=run_id))


def another_process(services) -> AuditLog:
    """The same table seen from another process: its own (empty) hints."""
    return AuditLog(services.repos.table, services.repos.outbox)


def event_seqs(services, run_id: str) -> list[int]:
    return [e.seq for e in services.repos.audit.events_after(run_id, 0, 1000)]


def test_a_claim_on_a_run_this_process_changed_last_reads_no_run(services, admin_key):
    admin, run = start_run(services, admin_key)
    with dynamodb_calls(services.repos.client) as calls:
        task, _claim = claim(services, admin, run.id)
    assert calls == ["Query", "TransactWriteItems"]   # the remembered run authorizes the claim by run
    assert task.status == TaskStatus.in_progress
    seqs = event_seqs(services, run.id)
    assert seqs == list(range(1, len(seqs) + 1))


def test_a_stale_hint_costs_one_cancelled_transaction_and_no_read(services, admin_key):
    admin, run = start_run(services, admin_key)
    other = another_process(services)
    other.commit(run_id=run.id, actor="someone", action="test.note", entity=f"run:{run.id}", data={})
    with dynamodb_calls(services.repos.client) as calls:
        task, _claim = claim(services, admin, run.id)
    assert calls == ["Query", "TransactWriteItems", "TransactWriteItems"]
    events = services.repos.audit.events_after(run.id, 0, 1000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.action for e in events[-2:]] == ["test.note", "task.claimed"]
    assert services.repos.runs.get_item(run.id)["event_seq"] == events[-1].seq


def test_a_run_that_stopped_running_meanwhile_refuses_the_claim(services, admin_key):
    admin, run = start_run(services, admin_key)
    another_process(services).commit(run_id=run.id, actor="someone", action="test.hold", entity=f"run:{run.id}",
                                     data={}, on_run=lambda _run: {"status": "awaiting_approval"})
    assert claim(services, admin, run.id) is None   # the hint said running; the run as it is says otherwise
    assert all(t.status == TaskStatus.queued for t in services.repos.tasks.of_run(run.id))
    assert event_seqs(services, run.id)[-1] == services.repos.runs.get_item(run.id)["event_seq"]


def test_a_refusal_on_a_remembered_run_is_decided_again_on_the_run_as_it_is(services, admin_key):
    admin, run = start_run(services, admin_key)
    services.repos.audit.commit(run_id=run.id, actor="someone", action="test.hold", entity=f"run:{run.id}",
                                data={}, on_run=lambda _run: {"status": "awaiting_approval"})
    another_process(services).commit(run_id=run.id, actor="someone", action="test.resume", entity=f"run:{run.id}",
                                     data={}, on_run=lambda _run: {"status": "running"})
    with dynamodb_calls(services.repos.client) as calls:
        task, _claim = claim(services, admin, run.id)   # this process remembers the run on hold
    assert calls == ["Query", "GetItem", "TransactWriteItems"]
    assert task.status == TaskStatus.in_progress
    assert [e.action for e in services.repos.audit.events_after(run.id, 0, 1000)][-3:] == \
        ["test.hold", "test.resume", "task.claimed"]


def test_the_remembered_run_matches_the_stored_one_after_each_commit(services, admin_key):
    admin, run = start_run(services, admin_key)
    claim(services, admin, run.id)
    services.repos.audit.commit(run_id=run.id, actor="someone", action="test.effects", entity=f"run:{run.id}",
                                data={}, counters={"count_queued": -1, "count_done": 1},
                                on_run=lambda _run: {"note": "set", "status": "running"})
    remembered = services.repos.audit.hints.get(run.id)
    assert remembered == services.repos.runs.get_item(run.id)
