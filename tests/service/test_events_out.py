"""Events out on in-process moto: every commit's audit event reaches the EventBridge bus through the
outbox (an EventBridge rule with an SQS target receives what it asks for, nothing else), a failed
publication waits in the outbox for the sweeper, and webhook deliveries go out once each, in order,
signed, retried and given up on as the contract says."""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.enums import AttentionKind
from chalicelib.domain.messages import GateMessage, parse_outbox_record
from chalicelib.domain.requests import ClaimRequest, ProjectCreate, RunCreate
from chalicelib.domain.webhooks import WebhookCreate
from chalicelib.services.sweeper import Sweeper
from chalicelib.services.webhook_delivery import RetryPolicy
from tests.support.big_run import parse
from tests.support.events import publishing_services
from tests.support.receiver import Receiver, seqs


@pytest.fixture
def stack():
    with publishing_services() as publishing:
        yield publishing


@pytest.fixture
def admin(stack):
    services = stack.services
    principal = services.keys.authenticate("Bearer " + services.keys.bootstrap_admin()[1])
    services.projects.create(principal, ProjectCreate(id="shop", name="Shop", repository_url="https://example.com/s.git"))
    return principal


def start_run(stack, admin, tasks: int = 2, **fields):
    body = {"title": "events", "stages": ["dev", "qa"], "tasks": [{"title": f"task {i}"} for i in range(tasks)],
            **fields}
    return stack.services.runs.start(admin, "shop", parse(RunCreate, **body))


def ask_deploy_gate(stack, run_id: str) -> None:
    """What the dispatcher does when the run execution reaches its deploy gate (on AWS its message
    comes from Step Functions): it opens the gate, an ``approval.requested`` commit."""
    stack.services.dispatch.handle(GateMessage(run_id=run_id, gate="deploy", token="token-1").model_dump())


def pending_records(stack) -> list:
    return [parse_outbox_record(i) for i in stack.services.repos.outbox.pending(100)]


def add_webhook(stack, admin, url: str, events=("*",), **fields):
    return stack.services.webhooks.create(admin, "shop", WebhookCreate.model_validate(
        {"url": url, "events": list(events), **fields}))


def test_an_eventbridge_rule_with_an_sqs_target_receives_approval_requested_of_its_run_and_nothing_else(stack, admin):
    run = start_run(stack, admin)
    other = start_run(stack, admin)
    stack.publish()   # the stream consumer publishes the runs' first events before the rules exist
    approvals = stack.rule_to_queue("approvals-of-run", {"source": ["baton"], "detail-type": ["approval.requested"],
                                                         "detail": {"run_id": [run.id]}})
    everything = stack.rule_to_queue("everything", {"source": ["baton"]})
    ask_deploy_gate(stack, run.id)
    ask_deploy_gate(stack, other.id)

    received = stack.received(approvals)
    assert [(e["source"], e["detail-type"]) for e in received] == [("baton", "approval.requested")]
    detail = received[0]["detail"]
    assert (detail["run_id"], detail["project_id"], detail["data"], detail["actor"]) == \
        (run.id, "shop", {"gate": "deploy"}, "system:dispatcher")
    events = stack.services.repos.audit.events_after(run.id, 0, 100)
    assert detail["seq"] == next(e.seq for e in events if e.action == "approval.requested")
    # Everything else was published too (so the rule's silence about it means something): both
    # gates, and nothing that was committed after the rules existed is missing.
    actions = sorted(e["detail-type"] for e in stack.received(everything))
    assert actions == ["approval.requested", "approval.requested"]
    assert pending_records(stack) == []   # the stream consumer delivered and deleted them


def test_every_event_of_a_run_is_published_once_in_the_commit_that_wrote_it(stack, admin):
    everything = stack.rule_to_queue("all", {"source": ["baton"]})
    run = start_run(stack, admin, tasks=3)
    published = [e["detail"] for e in stack.received(everything)]
    committed = stack.services.repos.audit.events_after(run.id, 0, 100)
    assert [(d["seq"], d["action"]) for d in sorted(published, key=lambda d: d["seq"])] == \
        [(e.seq, e.action) for e in committed]
    assert committed[0].action == "run.created" and {d["project_id"] for d in published} == {"shop"}


def test_a_publication_that_fails_stays_in_the_outbox_and_the_sweeper_delivers_it(stack, admin):
    bus = stack.resources.event_bus_name
    everything = stack.rule_to_queue("all-events", {"source": ["baton"]})
    run = start_run(stack, admin, tasks=1)
    assert len(stack.received(everything)) == len(stack.services.repos.audit.events_after(run.id, 0, 100)) > 0
    stack.events.remove_targets(Rule="all-events", EventBusName=bus, Ids=["q"])
    stack.events.delete_rule(Name="all-events", EventBusName=bus)
    stack.events.delete_event_bus(Name=bus)   # EventBridge answers "no such bus" now

    ask_deploy_gate(stack, run.id)            # the commit succeeds; its publication does not:
    assert stack.publish() > 0                # the stream consumer fails to put it on the bus
    approval = stack.services.repos.approvals.get(run.id, "deploy")
    assert approval and approval["status"] == "pending"
    [record] = pending_records(stack)
    assert record.call == "publish" and [e["action"] for e in record.events] == ["approval.requested"]

    stack.events.create_event_bus(Name=bus)   # it is back; the sweeper's outbox pass delivers
    everything = stack.rule_to_queue("all-again", {"source": ["baton"]})
    services = stack.services
    swept = Sweeper(services.repos, services.outbox, services.tasks, services.approvals, outbox_grace_seconds=0)
    assert swept.sweep_once(reconcile=False)["delivered"] == 1
    [event] = stack.received(everything)
    assert (event["detail-type"], event["detail"]["run_id"]) == ("approval.requested", run.id)
    assert pending_records(stack) == []
    assert Sweeper(services.repos, services.outbox, services.tasks, services.approvals,
                   outbox_grace_seconds=0).sweep_once(reconcile=False)["delivered"] == 0
    assert stack.received(everything) == []


def test_deliveries_reach_a_receiver_in_seq_order_signed_with_the_webhook_secret(stack, admin):
    with Receiver() as receiver:
        hook = add_webhook(stack, admin, receiver.url, events=("run.*", "task.*", "approval.requested"))
        run = start_run(stack, admin, tasks=2)
        for _ in range(2):
            stack.services.tasks.claim(admin, parse(ClaimRequest, stage="dev", agent_id="a", run_id=run.id))
        ask_deploy_gate(stack, run.id)
        stack.drain()
        wanted = [e for e in stack.services.repos.audit.events_after(run.id, 0, 100)
                  if e.action.split(".")[0] in ("run", "task") or e.action == "approval.requested"]
        got = receiver.delivered()
        assert seqs(got) == [e.seq for e in wanted]
        assert [e.action for e in wanted] == ["run.created", "run.started", "task.claimed", "task.claimed",
                                              "approval.requested"]
        assert all(r.verifies(hook.secret) for r in got)
        assert not any(r.verifies("whsec_not-the-secret-at-all") for r in got)
        first = got[0]
        assert first.headers["Baton-Event"] == first.json["action"] == "run.created"
        assert first.headers["Baton-Delivery"] == first.json["delivery_id"]
        assert first.headers["Content-Type"] == "application/json"
        page = stack.services.webhooks.deliveries(admin, hook.id, 100, None)
        assert {(d.status.value, d.attempts) for d in page.items} == {("delivered", 1)}
        assert sorted(d.event_seq for d in page.items) == [e.seq for e in wanted]


def test_fanning_the_same_events_out_again_delivers_nothing_twice(stack, admin):
    with Receiver() as receiver:
        add_webhook(stack, admin, receiver.url)
        run = start_run(stack, admin, tasks=1)
        stack.drain()
        before = seqs(receiver.delivered())
        events = stack.services.repos.audit.events_after(run.id, 0, 100)
        assert before == [e.seq for e in events]
        # The sweeper's retry of every publication (the records are gone; rebuild them as written)
        for event in events:
            record = stack.services.repos.audit.publication("shop", run.id, {**event.model_dump(), "seq": event.seq})
            stack.services.events.deliver(record)
            stack.services.events.fan_out(record)
        stack.drain()
        assert seqs(receiver.delivered()) == before
        assert len(stack.services.webhooks.deliveries(admin, receiver_hook_id(stack, admin), 100, None).items) == \
            len(before)


def receiver_hook_id(stack, admin) -> str:
    [hook] = stack.services.webhooks.list(admin, "shop", 10, None).items
    return hook.id


def test_a_failing_receiver_gets_backoff_and_its_run_s_later_events_wait_behind_the_failed_one(stack, admin):
    with Receiver(fail_first=1, fail_status=503) as receiver:
        hook = add_webhook(stack, admin, receiver.url, events=("run.*",))
        run = start_run(stack, admin, tasks=1)
        stack.publish()   # the stream consumer fans the run's events out
        pump = stack.pump()
        pump.pump_once()
        assert [r.answered for r in receiver.all()] == [503]   # run.created failed; run.started waited
        [failed] = [d for d in stack.services.webhooks.deliveries(admin, hook.id, 10, None).items if d.attempts]
        assert (failed.status.value, failed.attempts, failed.last_status_code) == ("pending", 1, 503)
        assert failed.next_attempt_at and failed.next_attempt_at > failed.created_at
        assert pump.pump_once() == 0             # nothing receivable while the first waits for its backoff
        stack.drain(until=lambda: len(receiver.delivered()) == 2, timeout=15)
        assert seqs(receiver.delivered(), run.id) == [1, 2]   # in order once the backoff passed
        assert [r.json["seq"] for r in receiver.all()] == [1, 1, 2]


def test_after_its_retry_window_a_delivery_fails_opens_one_attention_item_and_the_rest_go_on(admin, stack):
    services = stack.services
    services.webhook_deliverer.policy = RetryPolicy(base_seconds=1, cap_seconds=1, give_up_seconds=0)
    with Receiver(fail_first=10 ** 6, fail_status=500) as receiver:
        hook = add_webhook(stack, admin, receiver.url, events=("run.*",))
        run = start_run(stack, admin, tasks=1)
        stack.drain()
        assert seqs(receiver.all()) == [1, 2]       # one attempt each: their window was over at once
        deliveries = services.webhooks.deliveries(admin, hook.id, 10, None).items
        assert {(d.status.value, d.attempts, d.last_status_code) for d in deliveries} == {("failed", 1, 500)}
        items = services.repos.attention.newest("shop", "open", 10, None)
        assert [(i.kind, i.run_id, i.details["webhook_id"]) for i in items] == [(AttentionKind.webhook, run.id, hook.id)]


def test_a_webhook_added_during_a_run_gets_the_events_after_it_only(stack, admin):
    with Receiver() as receiver:
        run = start_run(stack, admin, tasks=2)            # run.created, run.started: before the webhook
        add_webhook(stack, admin, receiver.url)
        stack.services.tasks.claim(admin, parse(ClaimRequest, stage="dev", agent_id="a", run_id=run.id))
        stack.drain()
        assert [r.json["action"] for r in receiver.delivered()] == ["task.claimed"]
        assert seqs(receiver.delivered()) == [3]


def test_a_removed_webhook_gets_nothing_more(stack, admin):
    with Receiver() as receiver:
        hook = add_webhook(stack, admin, receiver.url)
        start_run(stack, admin, tasks=1)
        stack.services.webhooks.delete(admin, hook.id)
        stack.drain()
        assert receiver.all() == []


def test_a_slack_webhook_gets_one_line_of_text(stack, admin):
    with Receiver() as receiver:
        add_webhook(stack, admin, receiver.url, events=("approval.requested",), format="slack")
        run = start_run(stack, admin, tasks=1)
        ask_deploy_gate(stack, run.id)
        stack.drain()
        [request] = receiver.delivered()
        text = request.json["text"]
        assert set(request.json) == {"text"} and "[Shop]" in text and run.id in text and "approval.requested" in text
        assert "gate: deploy" in text and json.loads(request.body) == request.json
