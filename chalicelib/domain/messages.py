"""Typed messages: what goes on the dispatch queue, and what the outbox owes AWS after a commit.

Dispatch messages carry ids, never state (DynamoDB is read for the truth); each kind is a model,
told apart by ``kind``. Outbox records are the calls a change owes once its transaction has
committed (answer a task token, start or stop an execution, enqueue a dispatch message, publish
its audit event), told apart by ``call``; they are written in the change's transaction and
delivered after it. A webhook message asks for one delivery (``services.webhook_delivery``).
"""

from __future__ import annotations

import functools
import secrets
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import ConfigDict, Field, TypeAdapter

from . import clock, ids
from .base import DomainModel

_MESSAGE = ConfigDict(extra="ignore", frozen=True)


# ---- the dispatch queue


class FillMessage(DomainModel):
    """Start task executions of a run up to its parallelism (asked again whenever a slot frees)."""

    model_config = _MESSAGE
    kind: Literal["fill"] = "fill"
    run_id: str


class StageMessage(DomainModel):
    """A task execution dispatched a stage job and waits on ``token`` for its outcome."""

    model_config = _MESSAGE
    kind: Literal["stage"] = "stage"
    task_id: str
    dispatch: int
    attempt: int = 1
    token: str


class RunWaitMessage(DomainModel):
    """The run execution waits until every task ended (``run_wait``) or for its release (``release``)."""

    model_config = _MESSAGE
    kind: Literal["run_wait", "release"]
    run_id: str
    token: str


class GateMessage(DomainModel):
    """The run execution waits on an approval gate."""

    model_config = _MESSAGE
    kind: Literal["gate"] = "gate"
    gate: str
    run_id: str
    token: str


class CancelMessage(DomainModel):
    """Cancel the open tasks of a killed (or failed: a gate rejected) run, a batch at a time (asked
    again while more are left)."""

    model_config = _MESSAGE
    kind: Literal["cancel"] = "cancel"
    run_id: str
    actor: str = "system:dispatcher"


class ResumeMessage(DomainModel):
    """A gate let a run go on: release the tasks its canary held back, a batch at a time, launch the
    container jobs dispatched while it waited, and fill its parallelism."""

    model_config = _MESSAGE
    kind: Literal["resume"] = "resume"
    run_id: str
    actor: str = "system:dispatcher"


DispatchMessage = Annotated[Union[FillMessage, StageMessage, RunWaitMessage, GateMessage, CancelMessage, ResumeMessage],
                            Field(discriminator="kind")]
@functools.cache
def _dispatch_adapter() -> TypeAdapter:
    return TypeAdapter(DispatchMessage)


def parse_dispatch_message(body: Any) -> DispatchMessage:
    """The typed message of a queue body (a dict); pydantic's ValidationError when it is not one."""
    return _dispatch_adapter().validate_python(body)


# ---- the outbox


def _record_id() -> str:
    return f"{ids.OUTBOX}_{secrets.token_hex(10)}"


class _Record(DomainModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    id: str = Field(default_factory=_record_id)
    created_at: str = Field(default_factory=clock.now_iso)


class AnswerToken(_Record):
    """SendTaskSuccess: the output is the waiting execution's next input."""

    call: Literal["task_success"] = "task_success"
    token: str
    output: dict[str, Any]


class StartExecution(_Record):
    """StartExecution of the task or run state machine, named after the task or run (idempotent)."""

    call: Literal["start"] = "start"
    machine: Literal["task", "run"]
    name: str
    input: dict[str, Any]


class StopExecution(_Record):
    call: Literal["stop"] = "stop"
    arn: str
    cause: str = "stopped by Baton"


class Enqueue(_Record):
    """A message for the dispatch queue."""

    call: Literal["enqueue"] = "enqueue"
    body: DispatchMessage


class PublishEvents(_Record):
    """A commit's audit events, to publish: on the EventBridge bus, and to the project's webhooks
    (``services.events``). ``events`` are as ``domain.events.published`` shapes them; ``bus_done``:
    the bus has them already (a retry only fans out to webhooks again, which is idempotent)."""

    call: Literal["publish"] = "publish"
    project_id: str
    run_id: str
    events: list[dict[str, Any]]
    bus_done: bool = False


OutboxRecord = Annotated[Union[AnswerToken, StartExecution, StopExecution, Enqueue, PublishEvents],
                         Field(discriminator="call")]


@functools.cache
def _outbox_adapter() -> TypeAdapter:
    return TypeAdapter(OutboxRecord)


def parse_outbox_record(item: dict[str, Any]) -> Optional[OutboxRecord]:
    """The typed record of a stored item; None for an item of no known call (it cannot be delivered)."""
    try:
        return _outbox_adapter().validate_python(item)
    except ValueError:
        return None


# ---- the webhook queue


class WebhookMessage(DomainModel):
    """Deliver event ``seq`` of run ``run_id`` to webhook ``webhook_id`` (and, first, any earlier
    event of the run it has not had). Its group is the webhook and the run, its deduplication id
    the delivery id: fanning the same event out twice sends one message."""

    model_config = _MESSAGE
    kind: Literal["webhook"] = "webhook"
    webhook_id: str
    run_id: str
    seq: int
    delivery_id: str


__all__ = ["AnswerToken", "CancelMessage", "ResumeMessage", "DispatchMessage", "Enqueue", "FillMessage", "GateMessage",
           "OutboxRecord", "PublishEvents", "RunWaitMessage", "StageMessage", "StartExecution", "StopExecution",
           "WebhookMessage",
           "parse_dispatch_message", "parse_outbox_record"]
