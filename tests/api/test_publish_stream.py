"""Events leave off the request path: a commit writes its PublishEvents record in its transaction and
returns; the table's DynamoDB Stream (moto's, read by the local stack's ``StreamPump``) carries the
record to the app's ``publish`` handler, which puts the event on EventBridge and fans it out to the
webhooks. A record the consumer cannot deliver stays for the sweeper; the stream's other records
(other items, the record's own removal) never reach the consumer."""

from __future__ import annotations

from typing import Any

import botocore.client
import pytest

from chalicelib.domain.messages import parse_outbox_record
from chalicelib.domain.requests import ProjectCreate, RunCreate
from chalicelib.local.stream_pump import StreamPump, streams_client
from chalicelib.services.publish_stream import PUBLISH_FILTER, is_publish_insert
from chalicelib.services.sweeper import Sweeper
from tests.support.api import Api, start_run
from tests.support.big_run import parse
from tests.support.events import publishing_services
from tests.support.receiver import Receiver


@pytest.fixture
def stack_api():
    from chalice.test import Client

    import app as app_module

    with publishing_services() as stack, Client(app_module.app) as client:
        admin = Api(client, stack.services.keys.bootstrap_admin()[1])
        assert admin.post("/projects", {"id": "demo", "name": "Demo",
                                        "repository_url": "https://example.com/demo.git"}).status_code == 201
        agent = admin.post("/keys", {"name": "agent", "principal": "agent", "project_ids": ["demo"]})
        assert agent.status_code == 201, agent.data
        yield admin, admin.as_key(agent.data["key"]), stack


@pytest.fixture
def aws_calls(monkeypatch):
    """Every AWS call any botocore client of this process makes: (service, operation)."""
    calls: list[tuple[str, str]] = []
    make = botocore.client.BaseClient._make_api_call

    def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
        calls.append((client.meta.service_model.service_name, operation))
        return make(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counted)
    return calls


def pending(stack) -> list:
    return [parse_outbox_record(i) for i in stack.services.repos.outbox.pending(100)]


def test_a_claim_commits_in_three_calls_and_its_event_still_reaches_eventbridge_and_a_webhook(stack_api, aws_calls):
    admin, agent, stack = stack_api
    with Receiver() as receiver:
        hook = admin.post("/projects/demo/webhooks", {"url": receiver.url, "events": ["task.claimed"]})
        assert hook.status_code == 201, hook.data
        claims = stack.rule_to_queue("claims", {"source": ["baton"], "detail-type": ["task.claimed"]})
        run = start_run(admin, tasks=1)
        stack.publish()

        aws_calls.clear()
        claimed = agent.post("/queue/claim", {"stage": "dev", "agent_id": "agent-1", "run_id": run["id"]})
        assert claimed.status_code == 200, claimed.data
        # key lookup, one Query of the run's queue index, one transaction: nothing published in the request
        assert [op for _, op in aws_calls] == ["GetItem", "Query", "TransactWriteItems"]
        [record] = pending(stack)
        assert record.call == "publish" and [e["action"] for e in record.events] == ["task.claimed"]

        aws_calls.clear()
        stack.publish()   # the stream's event source: the INSERT of the record reaches the consumer
        services = {service for service, _ in aws_calls}
        assert ("events", "PutEvents") in aws_calls and ("sqs", "SendMessageBatch") in aws_calls
        assert "dynamodbstreams" in services and pending(stack) == []
        [event] = stack.received(claims)
        assert (event["detail"]["run_id"], event["detail"]["entity"]) == (run["id"], f"task:{claimed.data['task']['id']}")
        stack.drain()
        [delivered] = receiver.delivered()
        assert (delivered.json["action"], delivered.json["run_id"]) == ("task.claimed", run["id"])


def test_a_consumer_that_cannot_deliver_leaves_the_record_for_the_sweeper(stack_api, monkeypatch):
    admin, _agent, stack = stack_api
    everything = stack.rule_to_queue("everything", {"source": ["baton"]})
    run = start_run(admin, tasks=1)
    publisher = stack.services.events

    def refused(record):
        raise ConnectionError("EventBridge unreachable")

    monkeypatch.setattr(publisher, "deliver", refused)
    assert stack.publish() > 0                         # the batch went through the consumer...
    assert stack.stream.failed_batches == 0            # ...which did not fail it for the records
    left = pending(stack)
    assert [e["action"] for r in left for e in r.events] == ["run.created", "run.started"]
    assert stack.received(everything) == []

    monkeypatch.undo()
    services = stack.services
    swept = Sweeper(services.repos, services.outbox, services.tasks, services.approvals, outbox_grace_seconds=0)
    assert swept.sweep_once(reconcile=False)["delivered"] == 2
    assert sorted(e["detail"]["seq"] for e in stack.received(everything)) == [1, 2]
    assert pending(stack) == [] and run["id"]


def test_the_filter_lets_through_new_publish_records_only(stack_api):
    admin, _agent, stack = stack_api
    seen: list[dict[str, Any]] = []
    everything = StreamPump(streams_client(stack.services.settings), stack.resources.table_stream_arn,
                            lambda event, context: seen.extend(event["Records"]), accept=lambda record: True)
    start_run(admin, tasks=1)
    stack.publish()        # delivers and deletes the run's records: their REMOVEs are on the stream too
    while everything.pump_once():
        pass

    publish_keys = {r["dynamodb"]["Keys"]["pk"]["S"] for r in seen if is_publish_insert(r)}
    assert len(publish_keys) == 2   # run.created, run.started
    kinds = {(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"] in publish_keys) for r in seen}
    assert ("REMOVE", True) in kinds and ("INSERT", False) in kinds and ("MODIFY", False) in kinds
    for record in seen:
        ours = record["eventName"] == "INSERT" and record["dynamodb"]["Keys"]["pk"]["S"] in publish_keys
        assert is_publish_insert(record) == ours, record["eventName"]
    assert PUBLISH_FILTER == {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"call": {"S": ["publish"]}}}}

    # The consumer itself skips what the filter would have kept away (a REMOVE, another item).
    others = [r for r in seen if not is_publish_insert(r)]
    assert stack.services.publish_stream.handle(others) == {"delivered": 0, "left": 0, "skipped": len(others)}


def test_with_request_delivery_the_request_publishes_and_no_stream_consumer_runs():
    with publishing_services(events_delivery="request") as stack:
        assert stack.stream is None and stack.services.repos.audit.publisher is not None
        everything = stack.rule_to_queue("everything", {"source": ["baton"]})
        admin = stack.services.keys.authenticate("Bearer " + stack.services.keys.bootstrap_admin()[1])
        project = stack.services.projects.create(admin, ProjectCreate(id="shop", name="Shop",
                                                                      repository_url="https://example.com/s.git"))
        assert project and stack.received(everything) == []   # a project has no run: no event
        run = stack.services.runs.start(admin, "shop", parse(RunCreate, title="r", tasks=[{"title": "t"}]))
        assert [e["detail"]["action"] for e in stack.received(everything)] == ["run.created", "run.started"]
        assert pending(stack) == [] and run.id
