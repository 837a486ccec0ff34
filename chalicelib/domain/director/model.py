"""The director's vocabulary: its rules and actions, what it remembers of a task (``Supervision``)
and of a run (``RunWatch``).

A task's ``Supervision`` holds the facts recorded where they arise (each failed iteration's
failure fingerprint, written by the advance that failed it; the lease losses of the current stage
job, written by the lease expiry) and what the director did about them (the action keys it acted
on, the notes it left for the next job, a pause, a reassignment). The director acts on a key at
most once, which is what makes running it twice on the same facts do nothing twice.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Optional

from pydantic import Field

from ..base import DomainModel
from ..enums import AttentionKind

MAX_FAILURES_KEPT = 12
MAX_NOTES_KEPT = 5
MAX_DONE_KEPT = 60
MAX_DURATIONS_KEPT = 50


class Rule(str, Enum):
    """What the director watches for."""

    same_failure = "same_failure"                  # the same failure fingerprint N iterations in a row
    near_max_iterations = "near_max_iterations"    # one loop-back from max_iterations
    lease_churn = "lease_churn"                    # the same stage job re-dispatched K times
    idle_queue = "idle_queue"                      # queued work of an external role nobody tries to claim
    slow_stage = "slow_stage"                      # a stage job far slower than its peers in the run
    budget_near_end = "budget_near_end"            # a run close to its budget


class ActionKind(str, Enum):
    """What the director may do; each is an audit event ``director.{kind}``."""

    nudge = "nudge"                # a note in the next job's context and prompt
    escalate = "escalate"          # an attention item for a person
    pause_task = "pause_task"      # an escalation that also keeps the task out of the queue
    reassign = "reassign"          # the stage's next job to the role's fallback executor or agents


class FailureRecord(DomainModel):
    """One failed iteration of a task: where it failed and its fingerprint (None when the failure
    said nothing to recognise it by)."""

    stage: str
    iteration: int
    fingerprint: Optional[str] = None
    source: Optional[str] = Field(default=None, description="tests, findings or error")
    sample: str = ""
    at: str


class DirectorNote(DomainModel):
    """A note the director left on a task for its next job (``director_notes`` in the context)."""

    at: str
    rule: Rule
    stage: str
    iteration: int
    text: str


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

    def is_empty(self) -> bool:
        return self == Supervision()


class DirectorAction(DomainModel):
    """A proposed action: what to do, the rule that fired and its evidence. ``key`` names the fact
    acted on; an action whose key is already done is never taken again."""

    kind: ActionKind
    rule: Rule
    key: str
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    project_id: str
    run_id: str
    task_id: Optional[str] = None
    stage: Optional[str] = None
    reassign_to: Optional[Reassignment] = None

    @property
    def attention_kind(self) -> AttentionKind:
        return AttentionKind.idle_queue if self.rule == Rule.idle_queue else AttentionKind.escalation

    def event_data(self) -> dict[str, Any]:
        """What its audit event ``director.{kind}`` carries: the rule, the evidence, the message."""
        data: dict[str, Any] = {"rule": self.rule.value, "key": self.key, "evidence": self.evidence,
                                "message": self.message}
        if self.task_id:
            data["task_id"] = self.task_id
        if self.stage:
            data["stage"] = self.stage
        if self.reassign_to is not None:
            data["reassign_to"] = {"executor": self.reassign_to.executor, "agent_ids": self.reassign_to.agent_ids}
        return data


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


__all__ = ["MAX_DONE_KEPT", "MAX_DURATIONS_KEPT", "MAX_FAILURES_KEPT", "MAX_NOTES_KEPT", "ActionKind", "DirectorAction",
           "DirectorNote", "FailureRecord", "LeaseLosses", "Pause", "QueueWatch", "Reassignment", "Rule", "RunWatch",
           "StartedJob", "Supervision"]
