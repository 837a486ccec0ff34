"""What the director remembers of a task (``Supervision``, stored on the task as a plain object and
read with ``supervision_of``). Its words are in ``vocabulary``, its proposed actions in ``actions``,
what it keeps of runs and queues in ``watches``.

A task's ``Supervision`` holds the facts recorded where they arise (each failed iteration's
failure fingerprint, written by the advance that failed it; the lease losses of the current stage
job, written by the lease expiry) and what the director did about them (the action keys it acted
on, the notes it left for the next job, a pause, a reassignment). The director acts on a key at
most once, which is what makes running it twice on the same facts do nothing twice.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from ..base import DomainModel
from .vocabulary import ActionKind, DirectorNote, Rule

MAX_FAILURES_KEPT = 12
MAX_NOTES_KEPT = 5
MAX_DONE_KEPT = 60


class FailureRecord(DomainModel):
    """One failed iteration of a task: where it failed and its fingerprint (None when the failure
    said nothing to recognise it by)."""

    stage: str
    iteration: int
    fingerprint: Optional[str] = None
    source: Optional[str] = Field(default=None, description="tests, findings or error")
    sample: str = ""
    at: str


class Pause(DomainModel):
    """Why a task is held by the director: the attention item whose resolution releases it."""

    attention_id: str
    attention_created_at: str
    rule: Rule
    at: str


class Reassignment(DomainModel):
    """Where the next job of a stage goes instead: another executor and/or only these agent ids."""

    stage: str
    iteration: int
    executor: Optional[str] = None
    agent_ids: list[str] = Field(default_factory=list)
    rule: Optional[Rule] = None
    at: Optional[str] = None

    def applies_to(self, stage: str, iteration: int) -> bool:
        return self.stage == stage and self.iteration == iteration


class LeaseLosses(DomainModel):
    """How often the current stage job lost its agent (its lease expired): lease churn."""

    stage: str
    iteration: int
    count: int = 0


class Supervision(DomainModel):
    """What the director knows and did about one task (stored on the task, never returned as such)."""

    failures: list[FailureRecord] = Field(default_factory=list)
    lease_losses: Optional[LeaseLosses] = None
    notes: list[DirectorNote] = Field(default_factory=list)
    done: dict[str, str] = Field(default_factory=dict, description="action key -> when it was taken")
    escalations: int = 0
    last_escalated_at: Optional[str] = None
    paused: Optional[Pause] = None
    reassigned: Optional[Reassignment] = None

    def stored(self) -> dict[str, Any]:
        """As the task keeps it (only what differs from a task the director never looked at)."""
        return self.model_dump(mode="json", exclude_defaults=True)


def supervision_of(task: Any) -> Supervision:
    """A task's supervision, from what the task stores."""
    return Supervision.model_validate(task.supervision or {})


__all__ = ["MAX_DONE_KEPT", "MAX_FAILURES_KEPT", "MAX_NOTES_KEPT", "ActionKind", "DirectorNote", "FailureRecord",
           "LeaseLosses", "Pause", "Reassignment", "Rule", "Supervision", "supervision_of"]
