"""The director's words: its rules, its kinds of action, and the note it leaves for a task's next
job (what a task context shows, so the context's model loads no more than this)."""

from __future__ import annotations

from enum import Enum

from ..base import DomainModel


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


class DirectorNote(DomainModel):
    """A note the director left on a task for its next job (``director_notes`` in the context)."""

    at: str
    rule: Rule
    stage: str
    iteration: int
    text: str


__all__ = ["ActionKind", "DirectorNote", "Rule"]
