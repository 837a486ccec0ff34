"""The director's proposed actions: what to do, the rule that fired, its evidence."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from ..base import DomainModel
from ..enums import AttentionKind
from .model import ActionKind, Reassignment, Rule


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


__all__ = ["DirectorAction"]
