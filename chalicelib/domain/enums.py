"""The domain's vocabularies: stages and roles, task and run statuses, principals, results, gates."""

from __future__ import annotations

from enum import Enum


class Stage(str, Enum):
    none = "none"
    dev = "dev"
    qa = "qa"
    sec = "sec"
    docs = "docs"
    cicd = "cicd"
    complete = "complete"


PIPELINE_STAGES: tuple[Stage, ...] = (Stage.dev, Stage.qa, Stage.sec, Stage.docs)
DEFAULT_STAGES: tuple[Stage, ...] = PIPELINE_STAGES


class Role(str, Enum):
    director = "director"
    pm = "pm"
    dev = "dev"
    qa = "qa"
    security = "security"
    docs = "docs"
    cicd = "cicd"


STAGE_ROLE: dict[Stage, Role] = {
    Stage.dev: Role.dev,
    Stage.qa: Role.qa,
    Stage.sec: Role.security,
    Stage.docs: Role.docs,
    Stage.cicd: Role.cicd,
}


class TaskStatus(str, Enum):
    queued = "queued"
    in_progress = "in_progress"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_TASK_STATUSES = frozenset({TaskStatus.done, TaskStatus.failed, TaskStatus.cancelled})


class RunStatus(str, Enum):
    pending = "pending"
    running = "running"
    awaiting_approval = "awaiting_approval"
    succeeded = "succeeded"
    failed = "failed"
    killed = "killed"
    rolled_back = "rolled_back"


TERMINAL_RUN_STATUSES = frozenset({RunStatus.succeeded, RunStatus.failed, RunStatus.killed, RunStatus.rolled_back})
DEFAULT_QUEUE_TIMEOUT_SECONDS = 86_400


class TaskSource(str, Enum):
    manual = "manual"
    finding = "finding"
    bug_report = "bug_report"
    release = "release"
    rollback = "rollback"


class PrincipalKind(str, Enum):
    admin = "admin"
    human = "human"
    agent = "agent"


class AdvanceResult(str, Enum):
    pass_ = "pass"  # nosec B105  # an advance result, not a password
    fail = "fail"


class ApprovalDecision(str, Enum):
    approve = "approve"
    reject = "reject"


class ApprovalStatus(str, Enum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


GATES = ("canary", "deploy", "budget")


class CanaryTimeout(str, Enum):
    reject = "reject"
    approve = "approve"


class CanaryState(str, Enum):
    """Where a run with a canary is: its canary tasks working, the gate pending, or decided."""

    running = "running"
    gate = "gate"
    approved = "approved"
    rejected = "rejected"
    ended = "ended"   # every task was in the canary: nothing waited, no gate


class Hold(str, Enum):
    """Why a queued task may not start yet."""

    canary = "canary"       # until its run's canary gate is approved
    director = "director"   # paused by the director until a person resumes it


class AttentionKind(str, Enum):
    """What waits for a person: a gate to decide, a budget, the director's escalation, a task stuck
    waiting for an agent, a queue nobody works, a webhook whose deliveries failed for good."""

    approval = "approval"
    budget = "budget"
    escalation = "escalation"
    stuck = "stuck"
    idle_queue = "idle_queue"
    webhook = "webhook"


class AttentionStatus(str, Enum):
    open = "open"
    resolved = "resolved"
