"""The SQS pump: what Lambda's event source mapping does for a queue (dispatch, webhooks), on one machine.

``chalice local`` serves HTTP only; nothing there polls SQS. The pump receives a batch, hands it to
the same handler Lambda runs (with a context powertools can read), deletes the records the handler
did not report as failed and leaves the failed ones to SQS's redrive. A FIFO queue's records carry
their ``MessageGroupId`` as Lambda's do (powertools' FIFO processor reads it).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, Optional

__all__ = ["FakeLambdaContext", "SqsPump"]

log = logging.getLogger("baton.local")


class FakeLambdaContext:
    """What powertools reads from a Lambda context, for handlers run by the pump."""

    function_name = "baton-dispatch"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:baton-dispatch"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/baton-dispatch"
    log_stream_name = "local"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + 60

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class SqsPump(threading.Thread):
    """Plays the Lambda event source mapping: receive a batch, invoke the handler, delete the
    records it did not report as failed. Failed records become visible again and, after the
    queue's maxReceiveCount, SQS moves them to the DLQ."""

    def __init__(self, sqs: Any, queue_url: str, queue_arn: str, handler: Any, batch_size: int = 10,
                 retry_after_seconds: Optional[int] = 2, name: str = "sqs-pump"):
        """``retry_after_seconds``: when a failed record becomes visible again (a local shortcut of
        the queue's visibility timeout); None leaves it as the handler set it (Lambda's behaviour:
        the webhook deliverer sets each failed record's backoff itself)."""
        super().__init__(daemon=True, name=name)
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.handler = handler
        self.batch_size = batch_size
        self.retry_after_seconds = retry_after_seconds
        self.stopping = threading.Event()
        self.batches = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.pump_once(wait_seconds=1)
            except Exception:  # keep pumping: a handler bug must not stop the local stack
                log.exception("the SQS pump failed a batch")
                self.stopping.wait(1)

    def pump_once(self, wait_seconds: int = 0) -> int:
        response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
                                            WaitTimeSeconds=wait_seconds, AttributeNames=["All"])
        messages = response.get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m.get("MD5OfBody", ""),
            "eventSource": "aws:sqs", "eventSourceARN": self.queue_arn, "awsRegion": "us-east-1"}
            for m in messages]}
        result = self.handler(event, FakeLambdaContext()) or {}
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        for message in messages:
            if message["MessageId"] in failed:
                if self.retry_after_seconds is None:
                    continue
                self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                                   VisibilityTimeout=self.retry_after_seconds)
            else:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        self.batches += 1
        return len(messages)
