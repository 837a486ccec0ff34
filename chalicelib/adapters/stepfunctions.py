"""Step Functions and SQS, translated: start/stop executions, answer task tokens, send messages.

Errors that mean "the execution has moved on" (token unknown, timed out, execution gone) are
reported as ``GoneError`` so callers can drop the callback; anything else propagates for a retry.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from botocore.exceptions import ClientError

GONE_CODES = frozenset({"TaskDoesNotExist", "TaskTimedOut", "InvalidToken", "ExecutionDoesNotExist",
                        "ExecutionAlreadyExists"})


class GoneError(Exception):
    """The callback or execution no longer matters (the execution moved on or already exists)."""


def execution_arn(state_machine_arn: str, name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name


class StepFunctions:
    def __init__(self, client: Any, task_state_machine_arn: str, run_state_machine_arn: str):
        self.client = client
        self.task_state_machine_arn = task_state_machine_arn
        self.run_state_machine_arn = run_state_machine_arn

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in GONE_CODES:
                raise GoneError(code) from None
            raise

    def start(self, machine: str, name: str, payload: dict[str, Any]) -> str:
        arn = self.task_state_machine_arn if machine == "task" else self.run_state_machine_arn
        try:
            return self._call("start_execution", stateMachineArn=arn, name=name, input=json.dumps(payload))[
                "executionArn"]
        except GoneError:
            return execution_arn(arn, name)  # same name: already started, which is what we wanted

    def task_execution_arn(self, name: str) -> str:
        return execution_arn(self.task_state_machine_arn, name)

    def run_execution_arn(self, name: str) -> str:
        return execution_arn(self.run_state_machine_arn, name)

    def stop(self, arn: str, cause: str) -> None:
        """Stop an execution; one that already ended (or never started) is fine."""
        try:
            self._call("stop_execution", executionArn=arn, error="Killed", cause=cause[:256])
        except GoneError:
            pass
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ValidationException":
                raise

    def success(self, token: str, output: dict[str, Any]) -> None:
        self._call("send_task_success", taskToken=token, output=json.dumps(output))

    def describe(self, arn: str) -> Optional[dict[str, Any]]:
        try:
            return self._call("describe_execution", executionArn=arn)
        except GoneError:
            return None


class DispatchQueue:
    def __init__(self, client: Any, queue_url: str):
        self.client = client
        self.queue_url = queue_url

    def send(self, body: dict[str, Any]) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body))
