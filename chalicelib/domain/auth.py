"""Who may do what. Pure rules over a Principal; the API middleware only identifies the caller.

Principals
----------
* ``admin``: everything.
* ``human``: everything on its projects; the only principal that decides approvals.
* ``agent``: reads, claim, heartbeat, advance, handoffs, proofs, findings, bugs, context on its
  projects. A job-scoped agent token additionally carries one task id and may act only on it.

Access to another project's entity answers 404, never 403, so its existence does not leak.
"""

from __future__ import annotations

from enum import Enum
from typing import Optional

from pydantic import BaseModel, Field

from .errors import ForbiddenError, NotFoundError
from .models import PrincipalKind


class Action(str, Enum):
    read = "read"
    create_project = "create_project"
    manage_project = "manage_project"      # patch a project, start/kill runs, add tasks
    work = "work"                          # claim, heartbeat, advance, handoffs, proofs, findings
    report_bug = "report_bug"
    set_stage = "set_stage"
    decide_approval = "decide_approval"
    manage_keys = "manage_keys"
    manage_roles = "manage_roles"


_RIGHTS: dict[PrincipalKind, frozenset[Action]] = {
    PrincipalKind.admin: frozenset(Action) - {Action.decide_approval},
    PrincipalKind.human: frozenset({Action.read, Action.create_project, Action.manage_project, Action.work,
                                    Action.report_bug, Action.set_stage, Action.decide_approval}),
    PrincipalKind.agent: frozenset({Action.read, Action.work, Action.report_bug}),
}


class Principal(BaseModel):
    key_id: str
    name: str
    kind: PrincipalKind
    project_ids: list[str] = Field(default_factory=list)
    task_id: Optional[str] = None     # set for job-scoped agent tokens
    job_id: Optional[str] = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"{self.kind.value}:{self.name}"

    @property
    def is_admin(self) -> bool:
        return self.kind == PrincipalKind.admin

    def sees_project(self, project_id: str) -> bool:
        return self.is_admin or project_id in self.project_ids


def authorize(principal: Principal, action: Action, *, project_id: Optional[str] = None,
              task_id: Optional[str] = None, what: str = "resource") -> None:
    """Raise NotFoundError when the caller may not know the entity, ForbiddenError when it lacks the right."""
    if project_id is not None and not principal.sees_project(project_id):
        raise NotFoundError(f"{what} not found")
    if principal.task_id is not None and task_id is not None and task_id != principal.task_id:
        raise NotFoundError(f"{what} not found")
    if action not in _RIGHTS[principal.kind]:
        raise ForbiddenError(f"a {principal.kind.value} key may not {action.value.replace('_', ' ')}; "
                             "ask an admin for a key with that right")
    if principal.task_id is not None and action not in (Action.read, Action.work):
        raise ForbiddenError("a job token may only read and work on its own task")
