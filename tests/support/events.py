"""A stack that publishes its events, in-process: moto with every resource of infra/resources.yaml
(the EventBridge bus and its archive, the webhook FIFO queue and its DLQ among them), services wired
to them with the local stack's webhook settings (receivers on 127.0.0.1 allowed, 1 s backoff base),
the table's stream read by the local stack's ``StreamPump`` (from the moment the stack exists) into
the app's own ``publish`` handler, and a pump that feeds the webhook queue to the app's own
``webhooks`` handler, as Lambda would.

Requests do not publish (``BATON_EVENTS_DELIVERY=stream``, as deployed): ``publish()`` plays the
stream's event source once, synchronously, so a test decides when the consumer runs. ``received``
and ``drain`` publish first: what they see is what the stream consumer delivered."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Optional

import boto3
from moto import mock_aws

from chalicelib import bootstrap
from chalicelib.config import Settings
from chalicelib.local.moto_fidelity import atomic_transactions
from chalicelib.local.pump import SqsPump
from chalicelib.local.resources import LocalResources, create_local_resources
from chalicelib.local.stream_pump import StreamPump, streams_client

PREFIX = "baton-events"


@dataclass
class Publishing:
    services: Any
    resources: LocalResources
    stream: Optional[StreamPump] = None

    def publish(self) -> int:
        """Play the stream's event source until it has nothing new: every publish record committed
        so far goes through the app's ``publish`` handler. Returns how many stream records it read."""
        read = 0
        while self.stream is not None:
            n = self.stream.pump_once()
            if n == 0:
                break
            read += n
        return read

    @property
    def sqs(self) -> Any:
        return bootstrap.client("sqs", self.services.settings)

    @property
    def events(self) -> Any:
        return bootstrap.client("events", self.services.settings)

    def rule_to_queue(self, name: str, pattern: dict[str, Any]) -> str:
        """An EventBridge rule on the stack's bus whose target is a new SQS queue; its URL."""
        url = self.sqs.create_queue(QueueName=f"{PREFIX}-rule-{name}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.events.put_rule(Name=name, EventBusName=self.resources.event_bus_name, EventPattern=json.dumps(pattern))
        self.events.put_targets(Rule=name, EventBusName=self.resources.event_bus_name, Targets=[{"Id": "q", "Arn": arn}])
        return url

    def received(self, queue_url: str) -> list[dict[str, Any]]:
        """Every EventBridge event the queue holds once the stream consumer ran (each read once)."""
        self.publish()
        found: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def pump(self) -> SqsPump:
        import app as app_module

        return SqsPump(self.sqs, self.resources.webhook_queue_url, self.resources.webhook_queue_arn,
                       app_module.webhooks, retry_after_seconds=None, name="test-webhook-pump")

    def queue_counts(self) -> tuple[int, int]:
        """(visible, in flight or waiting for their backoff) messages of the webhook queue."""
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.resources.webhook_queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def drain(self, until: Optional[Callable[[], bool]] = None, timeout: float = 30.0) -> None:
        """Pump the webhook queue until it is empty (or ``until`` holds), waiting out backoffs; a
        deadline, not the timing, decides: it fails when the queue does not empty in time."""
        self.publish()
        pump = self.pump()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pump.pump_once(wait_seconds=0)
            if (until() if until else self.queue_counts() == (0, 0)):
                return
            time.sleep(0.05)
        raise AssertionError(f"the webhook queue did not settle in {timeout} s: {self.queue_counts()}")


@contextmanager
def publishing_services(**settings: Any) -> Iterator[Publishing]:
    """In-process moto with every resource of the template and services that publish their events."""
    with mock_aws(), atomic_transactions():
        base = Settings.from_env()
        session = boto3.session.Session(region_name=base.region)
        resources = create_local_resources({s: session.client(s) for s in ("dynamodb", "s3", "sqs", "stepfunctions",
                                                                          "events")}, prefix=PREFIX)
        wired = replace(base, table_name=resources.table_name, idempotency_table=resources.idempotency_table_name,
                        bucket=resources.bucket, event_bus=resources.event_bus_name,
                        webhook_queue_url=resources.webhook_queue_url, webhook_allow_loopback=True,
                        webhook_retry_base_seconds=1.0, webhook_timeout_seconds=3.0, **settings)
        services = bootstrap.build_services(wired)
        import app as app_module
        from chalicelib import workers
        from chalicelib.api import idempotency

        idempotency.reset()
        workers._idempotent_handler = None
        bootstrap.reset_services(services)
        try:
            stream = None
            if services.publishes and not wired.publishes_in_request:
                stream = StreamPump(streams_client(wired), resources.table_stream_arn, app_module.publish,
                                    name="test-stream-pump")
            yield Publishing(services, resources, stream)
        finally:
            bootstrap.reset_services(None)
            workers._idempotent_handler = None
            idempotency.reset()
