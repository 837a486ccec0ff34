"""The stream pump: what Lambda's event source mapping does for the table's DynamoDB Stream (the
``publish`` function), on one machine.

``chalice local`` runs no event source; moto keeps the table's stream (its records, shards and
iterators, through the ``dynamodbstreams`` API) but invokes nothing. The pump reads every shard of
the stream from where it stood when the pump was made (LATEST: what a snapshot restore wrote before
is the sweeper's, as on AWS a new event source mapping starts at LATEST), follows new shards from
their start, keeps the records that pass the event source's filter (``services.publish_stream``),
and hands them to the same handler Lambda runs, in batches of up to ``batch_size``. A batch the
handler raises on is retried (``max_retries``, the template's MaximumRetryAttempts) and then
skipped, as Lambda does; its records are still in the table, so the sweeper delivers them. When the
stream is quiet it polls every ``idle_seconds``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from .pump import FakeLambdaContext

__all__ = ["StreamPump", "streams_client"]

log = logging.getLogger("baton.local")


def streams_client(settings: Any) -> Any:
    """A ``dynamodbstreams`` client for the settings' endpoint. Account-based endpoints are off:
    botocore would send a call naming a stream ARN to ``{account}.streams-ddb...``, which in-process
    moto does not serve (an explicit endpoint, the local stack's moto server, skips them anyway)."""
    from botocore.config import Config

    from .. import bootstrap

    return bootstrap.client("dynamodbstreams", settings,
                            bootstrap.CLIENT_CONFIG.merge(Config(account_id_endpoint_mode="disabled")))


class StreamPump(threading.Thread):
    def __init__(self, streams: Any, stream_arn: str, handler: Callable[..., Any],
                 accept: Optional[Callable[[dict[str, Any]], bool]] = None, *, batch_size: int = 100,
                 idle_seconds: float = 0.2, max_retries: int = 3, name: str = "stream-pump"):
        super().__init__(daemon=True, name=name)
        if accept is None:
            from ..services.publish_stream import is_publish_insert

            accept = is_publish_insert
        self.streams = streams
        self.stream_arn = stream_arn
        self.handler = handler
        self.accept = accept
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.max_retries = max_retries
        self.stopping = threading.Event()
        self.batches = 0
        self.failed_batches = 0
        self._iterators: dict[str, str] = {}     # open shard -> its next iterator
        self._closed: set[str] = set()
        self._pending: list[dict[str, Any]] = []   # read, accepted, not yet handled
        self._attempts = 0
        self._lock = threading.Lock()
        self._discover("LATEST")                 # positioned now: whatever is written from here on

    def _discover(self, position: str = "TRIM_HORIZON") -> None:
        """Iterators for the shards not seen yet: at ``position`` (LATEST for those open when the
        pump is made, the start of those that appear later)."""
        start: Optional[str] = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
            if start:
                kwargs["ExclusiveStartShardId"] = start
            description = self.streams.describe_stream(**kwargs)["StreamDescription"]
            for shard in description.get("Shards", []):
                shard_id = shard["ShardId"]
                if shard_id in self._iterators or shard_id in self._closed:
                    continue
                self._iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=position)["ShardIterator"]
            start = description.get("LastEvaluatedShardId")
            if not start:
                return

    def run(self) -> None:
        rounds = 0
        while not self.stopping.is_set():
            try:
                if self.pump_once() == 0 or self._attempts:   # quiet, or a failed batch waits a little
                    self.stopping.wait(self.idle_seconds)
                rounds += 1
                if rounds % 25 == 0:   # about every 5 s when idle: shards that appeared meanwhile
                    with self._lock:
                        self._discover()
            except Exception:  # keep pumping: a stream or handler hiccup must not stop the local stack
                log.exception("the stream pump failed a round")
                self.stopping.wait(1)

    def pump_once(self) -> int:
        """Read each open shard once and hand the accepted records to the handler; returns how many
        stream records were read or retried (0: the stream had nothing new)."""
        with self._lock:
            read = 0
            for shard_id, iterator in list(self._iterators.items()):
                response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                records = response.get("Records", [])
                read += len(records)
                self._pending.extend(r for r in records if self.accept(r))
                following = response.get("NextShardIterator")
                if following:
                    self._iterators[shard_id] = following
                else:   # the shard is closed and read to its end: its children are new shards
                    del self._iterators[shard_id]
                    self._closed.add(shard_id)
                    self._discover()
            retried = len(self._pending) if self._attempts else 0
            while self._pending:
                batch = self._pending[:self.batch_size]
                try:
                    self.handler({"Records": batch}, PublishContext())
                    self.batches += 1
                except Exception:
                    self._attempts += 1
                    if self._attempts <= self.max_retries:
                        log.warning("the publish handler failed a batch of %d (attempt %d); retried",
                                    len(batch), self._attempts, exc_info=True)
                        return read + retried or 1
                    log.error("the publish handler failed a batch of %d %d times; skipped (the sweeper delivers "
                              "its records)", len(batch), self._attempts, exc_info=True)
                    self.failed_batches += 1
                del self._pending[:len(batch)]
                self._attempts = 0
            return read + retried


class PublishContext(FakeLambdaContext):
    function_name = "baton-publish"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:baton-publish"
    log_group_name = "/aws/lambda/baton-publish"
