"""What the director keeps about runs (``RUN#{run}``/``DIRECTOR``) and claim queues
(``PROJECT#{project}``/``QUEUE#{stage}``)."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from ..base import DomainModel

MAX_DURATIONS_KEPT = 50


class StartedJob(DomainModel):
    stage: str
    iteration: int = 0
    at: str


class RunWatch(DomainModel):
    """What the director keeps per run (``RUN#{run}``/``DIRECTOR``): how far it read the run's audit
    log, the stage jobs in flight and the durations of the finished ones (the peers of the slow-stage
    rule), and the budget it escalated for."""

    seen_seq: int = 0
    started: dict[str, StartedJob] = Field(default_factory=dict)
    durations: dict[str, list[float]] = Field(default_factory=dict)
    budget_escalated_for: Optional[str] = None
    version: int = 0


class QueueWatch(DomainModel):
    """What the director keeps per claim queue (``PROJECT#{project}``/``QUEUE#{stage}``): the last
    claim attempt recorded, and when the queue was last reported idle."""

    last_attempt_at: Optional[str] = None
    idle_reported_at: Optional[str] = None


__all__ = ["MAX_DURATIONS_KEPT", "QueueWatch", "RunWatch", "StartedJob"]
