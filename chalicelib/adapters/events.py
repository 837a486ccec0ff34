"""Events out, translated to AWS: the EventBridge bus and the webhook queue (SQS FIFO).

``EventBus.put`` sends published events as PutEvents entries (source ``baton``, ``detail-type`` the
action), at most 10 entries and 256 KB per request, and says how many entries EventBridge refused
(``FailedEntryCount``). ``WebhookQueue`` sends delivery messages (group: webhook and run, so they go
out in order; deduplication id: the delivery id) and delays a message that failed (its visibility).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

from ..domain import clock
from ..domain.events import SOURCE
from ..domain.messages import WebhookMessage
from ..domain.webhooks import message_group

MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1024
MAX_VISIBILITY_SECONDS = 12 * 3600


class PublishError(Exception):
    """EventBridge or SQS did not take everything: the outbox record stays, the sweeper retries."""


def _entry_size(entry: dict[str, Any]) -> int:
    # EventBridge's own reckoning: Source, DetailType, Detail and Resources in UTF-8, 14 bytes for Time.
    return len(entry["Source"].encode()) + len(entry["DetailType"].encode()) + len(entry["Detail"].encode()) + 14


def _chunks(entries: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        entry_size = _entry_size(entry)
        if chunk and (len(chunk) == MAX_ENTRIES or size + entry_size > MAX_REQUEST_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry_size
    if chunk:
        yield chunk


class EventBus:
    def __init__(self, client: Any, bus_name: str):
        self.client = client
        self.bus_name = bus_name

    def entries(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"Source": SOURCE, "DetailType": event["action"], "EventBusName": self.bus_name,
                 "Time": clock.parse_iso(event["at"]), "Resources": [],
                 "Detail": json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str)}
                for event in events]

    def put(self, events: Iterable[dict[str, Any]]) -> int:
        """Put the events on the bus; returns how many entries EventBridge refused (0: all published)."""
        failed = 0
        for chunk in _chunks(self.entries(events)):
            response = self.client.put_events(Entries=chunk)
            failed += int(response.get("FailedEntryCount", 0))
        return failed


class WebhookQueue:
    def __init__(self, client: Any, url: str):
        self.client = client
        self.url = url

    def send(self, messages: list[WebhookMessage]) -> None:
        """Send the messages, in order, ten per request; PublishError when SQS refused any."""
        for start in range(0, len(messages), MAX_ENTRIES):
            chunk = messages[start:start + MAX_ENTRIES]
            response = self.client.send_message_batch(QueueUrl=self.url, Entries=[{
                "Id": str(i), "MessageBody": message.model_dump_json(),
                "MessageGroupId": message_group(message.webhook_id, message.run_id),
                "MessageDeduplicationId": message.delivery_id} for i, message in enumerate(chunk)])
            if response.get("Failed"):
                codes = sorted({f.get("Code", "") for f in response["Failed"]})
                raise PublishError(f"the webhook queue refused {len(response['Failed'])} message(s): {codes}")

    def delay(self, receipt_handle: str, seconds: int) -> None:
        """Make a received message visible again in ``seconds`` (its next attempt)."""
        self.client.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt_handle,
                                              VisibilityTimeout=max(0, min(int(seconds), MAX_VISIBILITY_SECONDS)))


__all__ = ["EventBus", "MAX_ENTRIES", "PublishError", "WebhookQueue"]
