"""Who may do what. Pure rules over a Principal; the API middleware only identifies the caller.

Principals
----------
* ``admin``: everything.
* ``human``: everything on its projects; the only principal that decides approvals.
* ``agent``: reads, claim, heartbeat, advance, handoffs, proofs, findings, bugs, context on its
  projects; it cannot create projects, runs or tasks, kill runs, set stages or decide approvals.
* launch code (``bl_``, made by the dispatcher for one container job, handed to the runner at
  launch): it may only be redeemed, once, for the job's token (``POST /jobs/{job_id}/token``).
* job token (an ``agent`` principal with ``task_id`` set, bought with a launch code for one job):
  reads and work on its own task only (the task, its context, claim, heartbeat, advance, its
  handoffs, proofs and findings), plus the role configs (``read_config``) the runner checks.
  Nothing else: another task (or that task's handoffs and proofs) is 404; runs, projects, lists,
  bugs, keys and the director settings (its context carries them) are 403 (404 when they belong
  to another project). It is bound to its task, stage, dispatch and claim and dies with the job:
  once the job is advanced, re-dispatched, killed or its lease expired, it is 401 (checked when
  the key is authenticated).

Only admins manage keys, role configs and director settings (``manage_roles``). Deciding an
approval is a human act: admins are refused it too.

Access to another project's entity answers 404, never 403, so its existence does not leak; the
project check comes before any right check.
"""

from enum import Enum
from typing import Optional

from pydantic import Field

from .base import DomainModel
from .enums import PrincipalKind
from .errors import ForbiddenError, NotFoundError


class Action(str, Enum):
    read = "read"                          # entities of a project (runs, tasks, proofs, ...) and lists
    read_config = "read_config"            # role configs (a job token's runner checks them): no project, no task
    create_project = "create_project"
    manage_project = "manage_project"      # patch a project, start/kill runs, add tasks
    work = "work"                          # claim, heartbeat, advance, handoffs, proofs, findings
    report_bug = "report_bug"
    set_stage = "set_stage"
    decide_approval = "decide_approval"
    manage_keys = "manage_keys"
    manage_roles = "manage_roles"          # role configs and director settings
    redeem_launch_code = "redeem_launch_code"  # a launch code buys its job's token, once; nothing else


_RIGHTS: dict[PrincipalKind, frozenset[Action]] = {
    PrincipalKind.admin: frozenset(Action) - {Action.decide_approval},
    PrincipalKind.human: frozenset({Action.read, Action.read_config, Action.create_project, Action.manage_project,
                                    Action.work, Action.report_bug, Action.set_stage, Action.decide_approval}),
    PrincipalKind.agent: frozenset({Action.read, Action.read_config, Action.work, Action.report_bug}),
}

# What a job token may do on its own task; without a task only ``read_config``.
_JOB_TASK_ACTIONS = frozenset({Action.read, Action.work})
_JOB_FREE_ACTIONS = frozenset({Action.read_config})


class Principal(DomainModel):
    key_id: str
    name: str
    kind: PrincipalKind
    project_ids: list[str] = Field(default_factory=list)
    task_id: Optional[str] = None     # set for job-scoped agent tokens (and launch codes)
    job_id: Optional[str] = None
    # The claim this caller works under: bound into a job token; for an agent key, the
    # ``Baton-Claim`` header it sent. Evidence written by an agent counts only under it.
    claim_id: Optional[str] = None
    launch_code: bool = False         # a single-use launch code: it may only be redeemed for a job token

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
    """Raise NotFoundError when the caller may not know the entity, ForbiddenError when it lacks the right.

    Pass every scope the entity has: ``project_id`` for anything of a project, ``task_id`` for a
    task and for what hangs off one (its handoffs, proofs, context). A job token is refused
    whatever is not its own task, so a call that names no task is refused to it (unless the action
    needs no scope at all, ``read_config``).
    """
    if principal.launch_code or action == Action.redeem_launch_code:
        if not (principal.launch_code and action == Action.redeem_launch_code):
            raise ForbiddenError("a launch code only buys its job's token (POST /jobs/{job_id}/token); "
                                 "call the API with the token it returns")
        return
    if project_id is not None and not principal.sees_project(project_id):
        raise NotFoundError(f"{what} not found")
    if principal.task_id is not None:
        _authorize_job(principal, action, task_id=task_id, what=what)
    if action not in _RIGHTS[principal.kind]:
        raise ForbiddenError(f"a {principal.kind.value} key may not {action.value.replace('_', ' ')}; "
                             "ask an admin for a key with that right")


def _authorize_job(principal: Principal, action: Action, *, task_id: Optional[str], what: str) -> None:
    if task_id is not None and task_id != principal.task_id:
        raise NotFoundError(f"{what} not found")
    if action in _JOB_FREE_ACTIONS:
        return
    if task_id is None or action not in _JOB_TASK_ACTIONS:
        raise ForbiddenError("a job token may only read and work on its own task (and read role configs); "
                             "use an agent or human key for anything else")
