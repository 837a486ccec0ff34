"""Handoffs: the written baton one agent passes the next (what was done, decided, learnt and left
open), and their lifecycle.

``created → accepted → completed`` and ``created | accepted → failed``; anything else is a conflict
(409). Each transition is kept, newest last, in the handoff's ``transitions``.
"""

from enum import Enum

from pydantic import Field, field_validator

from .base import DomainModel
from .entities import StageRecord
from .enums import Role
from .errors import ConflictError
from .fields import STRICT_INPUT, LongText


class HandoffStatus(str, Enum):
    created = "created"
    accepted = "accepted"
    completed = "completed"
    failed = "failed"


class Confidence(str, Enum):
    high = "high"
    medium = "medium"
    low = "low"


class HandoffAction(str, Enum):
    accept = "accept"
    complete = "complete"
    fail = "fail"


_TRANSITIONS: dict[HandoffAction, tuple[frozenset[HandoffStatus], HandoffStatus]] = {
    HandoffAction.accept: (frozenset({HandoffStatus.created}), HandoffStatus.accepted),
    HandoffAction.complete: (frozenset({HandoffStatus.accepted}), HandoffStatus.completed),
    HandoffAction.fail: (frozenset({HandoffStatus.created, HandoffStatus.accepted}), HandoffStatus.failed),
}


def next_handoff_status(current: HandoffStatus, action: HandoffAction) -> HandoffStatus:
    """The status ``action`` leads to from ``current``, or ConflictError when it is not allowed."""
    allowed_from, target = _TRANSITIONS[action]
    if current not in allowed_from:
        hint = "; accept it first" if action == HandoffAction.complete and current == HandoffStatus.created else ""
        raise ConflictError(f"a {current.value} handoff cannot become {target.value} (allowed: created→accepted→"
                            f"completed, created|accepted→failed){hint}", code="illegal_transition")
    return target


class WorkDone(DomainModel):
    model_config = STRICT_INPUT
    ref: str = Field(min_length=1, max_length=500, description="commit, file, PR or URL the work is in")
    description: str = Field(default="", max_length=2000)


class Decision(DomainModel):
    model_config = STRICT_INPUT
    choice: str = Field(min_length=1, max_length=1000)
    alternatives: list[str] = Field(default_factory=list, max_length=20)
    reason: str = Field(default="", max_length=2000)

    @field_validator("alternatives")
    @classmethod
    def _short(cls, values: list[str]) -> list[str]:
        if any(len(v) > 1000 for v in values):
            raise ValueError("each alternative may be at most 1000 characters")
        return values


def check_proof_ids(values: list[str]) -> list[str]:
    """Proof ids cited by a handoff or a bug report: short, and each at most once."""
    if any(len(v) > 64 for v in values):
        raise ValueError("proof ids are at most 64 characters")
    if len(set(values)) != len(values):
        raise ValueError("proof_ids lists a proof twice")
    return values


def _check_items(values: list[str], what: str, limit: int = 2000) -> list[str]:
    if any(not v.strip() or len(v) > limit for v in values):
        raise ValueError(f"each of {what} must be non-empty text of at most {limit} characters")
    return values


class HandoffCreate(DomainModel):
    """The body of ``POST /tasks/{task_id}/handoffs``: the document one agent leaves the next."""

    model_config = STRICT_INPUT
    from_role: Role
    to_role: Role
    summary: str = Field(min_length=1, max_length=4000)
    work_done: list[WorkDone] = Field(default_factory=list, max_length=100)
    decisions: list[Decision] = Field(default_factory=list, max_length=50)
    notes_for_next: LongText = ""
    learnings: list[str] = Field(default_factory=list, max_length=50)
    open_questions: list[str] = Field(default_factory=list, max_length=50)
    resume_prompt: LongText = ""
    confidence: Confidence
    proof_ids: list[str] = Field(default_factory=list, max_length=50)

    _learnings = field_validator("learnings")(lambda cls, v: _check_items(v, "learnings"))
    _questions = field_validator("open_questions")(lambda cls, v: _check_items(v, "open_questions"))

    _proof_ids = field_validator("proof_ids")(lambda cls, v: check_proof_ids(v))


class HandoffNote(DomainModel):
    """The body of ``POST /handoffs/{id}/accept|complete|fail``."""

    model_config = STRICT_INPUT
    notes: str = Field(default="", max_length=4000)


class HandoffTransition(DomainModel):
    status: HandoffStatus
    at: str
    by: str
    notes: str = ""


class Handoff(StageRecord):
    from_role: Role
    to_role: Role
    summary: str
    work_done: list[WorkDone] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    notes_for_next: str = ""
    learnings: list[str] = Field(default_factory=list)
    open_questions: list[str] = Field(default_factory=list)
    resume_prompt: str = ""
    confidence: Confidence
    proof_ids: list[str] = Field(default_factory=list)
    status: HandoffStatus = HandoffStatus.created
    transitions: list[HandoffTransition] = Field(default_factory=list)
    created_by: str
    created_at: str
    updated_at: str
    version: int = 1
