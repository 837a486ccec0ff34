"""Entities of the pipeline and the request bodies that create or change them (pydantic v2).

Request models forbid unknown fields and are strict about JSON types, so a client cannot
mass-assign ``stage``, ``status``, ``version`` or ``owner``; those change only through their own
use cases.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .ids import PROJECT_ID_RE
from .repository_url import REPOSITORY_URL_HELP, check_repository_url


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


TERMINAL_RUN_STATUSES = frozenset({RunStatus.succeeded, RunStatus.failed, RunStatus.killed})
DEFAULT_QUEUE_TIMEOUT_SECONDS = 86_400


class TaskSource(str, Enum):
    manual = "manual"
    finding = "finding"
    bug_report = "bug_report"
    release = "release"


class PrincipalKind(str, Enum):
    admin = "admin"
    human = "human"
    agent = "agent"


class AdvanceResult(str, Enum):
    pass_ = "pass"  # nosec B105  # an advance result, not a password
    fail = "fail"


# --------------------------------------------------------------------------- field types

ProjectId = Annotated[str, Field(pattern=PROJECT_ID_RE.pattern, description="slug [a-z0-9][a-z0-9-]{1,62}")]
Title = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(max_length=10_000)]
Priority = Annotated[int, Field(ge=0, le=10)]
Name = Annotated[str, Field(min_length=1, max_length=100)]

_BRANCH_RE = re.compile(r"^(?!/)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,255}(?<!/)$")

STRICT_INPUT = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=False)


def _check_repository_url(value: str) -> str:
    """The stage-independent rules (domain.repository_url); whether a local repository is allowed
    depends on the stage, which the project service checks."""
    return check_repository_url(value, allow_local=True)


def _check_branch(value: str) -> str:
    if not _BRANCH_RE.match(value):
        raise ValueError("primary_branch must be a git branch name (letters, digits, . _ - /)")
    return value


MAX_SETTINGS_DEPTH = 16
# What a DynamoDB number can hold: at most 38 significant digits, magnitude 1E-130 .. <1E+126.
_DYNAMO_MAX_INT = 10 ** 38
_DYNAMO_MIN_MAGNITUDE = Decimal("1E-130")
_DYNAMO_MAX_MAGNITUDE = Decimal("1E+126")


def _check_settings_value(value: Any, depth: int) -> None:
    """Reject what the store cannot keep as given: non-finite or out-of-range numbers (NaN would be
    stored as null, 1e200 fails the write) and nesting deeper than DynamoDB's limit allows."""
    if depth > MAX_SETTINGS_DEPTH:
        raise ValueError(f"settings may nest at most {MAX_SETTINGS_DEPTH} levels deep")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) >= _DYNAMO_MAX_INT:
            raise ValueError("numbers in settings may have at most 38 digits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers in settings must be finite (no NaN or Infinity)")
        magnitude = abs(Decimal(repr(value)))
        if magnitude and not (_DYNAMO_MIN_MAGNITUDE <= magnitude < _DYNAMO_MAX_MAGNITUDE):
            raise ValueError("numbers in settings must lie between 1E-130 and 1E+126 in magnitude")
        return
    if isinstance(value, dict):
        for item in value.values():
            _check_settings_value(item, depth + 1)
        return
    if isinstance(value, list):
        for item in value:
            _check_settings_value(item, depth + 1)
        return
    raise ValueError(f"settings may hold only JSON values, not {type(value).__name__}")


def _check_settings(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > 50:
        raise ValueError("settings may hold at most 50 keys")
    for item in value.values():
        _check_settings_value(item, 1)
    return value


def check_patch(patch: BaseModel, when_empty: str) -> Any:
    """A PATCH body changes at least one field, and never sets one to null (omit it instead)."""
    if not patch.model_fields_set:
        raise ValueError(when_empty)
    for name in patch.model_fields_set:
        if getattr(patch, name) is None:
            raise ValueError(f"{name} cannot be null")
    return patch


# --------------------------------------------------------------------------- entities


class Project(BaseModel):
    id: str
    name: str
    repository_url: str
    primary_branch: str = "main"
    settings: dict[str, Any] = Field(default_factory=dict)
    created_at: str
    updated_at: str
    created_by: str = ""
    version: int = 1


class Canary(BaseModel):
    model_config = STRICT_INPUT
    fraction: float = Field(ge=0.001, le=1, description="share of the run's tasks that go first (0.001 to 1)")

    @field_validator("fraction", mode="before")
    @classmethod
    def _int_is_fine(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value) if abs(value) <= 10 else 2.0   # a huge int is out of range, never an OverflowError
        return value


class Ceilings(BaseModel):
    model_config = STRICT_INPUT
    max_tasks: Optional[int] = Field(default=None, ge=1, le=10_000)
    max_fix_tasks: Optional[int] = Field(default=50, ge=0, le=10_000)


class Progress(BaseModel):
    total: int
    by_stage: dict[str, int]
    by_status: dict[str, int]
    percent_complete: float


SeverityName = Literal["critical", "high", "medium", "low"]


class Run(BaseModel):
    id: str
    project_id: str
    title: str
    status: RunStatus
    stages: list[Stage]
    max_iterations: int
    parallelism: int
    canary: Optional[Canary] = None
    ceilings: Ceilings = Field(default_factory=Ceilings)
    deploy_gate: bool = True
    finding_threshold: Optional[SeverityName] = None
    pinned_roles: dict[str, str] = Field(default_factory=dict)
    progress: Optional[Progress] = None
    release_task_id: Optional[str] = None
    queue_timeout_seconds: int = DEFAULT_QUEUE_TIMEOUT_SECONDS
    pinned_role_versions: dict[str, int] = Field(default_factory=dict, exclude=True)
    created_at: str
    created_by: str
    updated_at: str
    version: int = 1


class Task(BaseModel):
    id: str
    run_id: str
    project_id: str
    title: str
    description: str = ""
    priority: int = 5
    stage: Stage
    status: TaskStatus
    iteration: int = 1
    source: TaskSource = TaskSource.manual
    parent_task_id: Optional[str] = None
    claimed_by: Optional[str] = None
    lease_expires_at: Optional[str] = None
    version: int = 1
    created_at: str
    updated_at: str
    # Held only by the server, never returned: the claim id is the claimant's capability to
    # write; the Step Functions token belongs to the stage job being waited for.
    claim_id: Optional[str] = Field(default=None, exclude=True)
    enqueued_at: Optional[str] = Field(default=None, exclude=True)
    awaiting_start: bool = Field(default=False, exclude=True)
    started: bool = Field(default=False, exclude=True)
    dispatch_seq: int = Field(default=0, exclude=True)
    attempt: int = Field(default=0, exclude=True)
    job_id: Optional[str] = Field(default=None, exclude=True)
    sfn_token: Optional[str] = Field(default=None, exclude=True)
    # How long it may wait unclaimed before it is reported (its run's), and the wait last reported.
    queue_timeout_seconds: int = Field(default=DEFAULT_QUEUE_TIMEOUT_SECONDS, exclude=True)
    wait_reported_for: Optional[str] = Field(default=None, exclude=True)
    claimed_with_key: Optional[str] = Field(default=None, exclude=True)   # the agent key that holds the claim

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_TASK_STATUSES


class Event(BaseModel):
    seq: int
    at: str
    actor: str
    action: str
    entity: str
    data: dict[str, Any] = Field(default_factory=dict)


class ApiKey(BaseModel):
    id: str
    name: str
    principal: PrincipalKind
    project_ids: list[str]
    created_at: str
    created_by: str = ""
    revoked_at: Optional[str] = None


class ApprovalDecision(str, Enum):
    approve = "approve"
    reject = "reject"


class ApprovalStatus(str, Enum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class Approval(BaseModel):
    gate: str
    status: ApprovalStatus
    requested_at: str
    decided_by: Optional[str] = None
    decided_at: Optional[str] = None
    decision: Optional[ApprovalDecision] = None
    comment: Optional[str] = None


class ApprovalRequest(BaseModel):
    model_config = STRICT_INPUT
    decision: ApprovalDecision
    comment: str = Field(default="", max_length=2000)


GATES = ("deploy",)


class Claim(BaseModel):
    claim_id: str
    expires_at: str


# --------------------------------------------------------------------------- request bodies


class ProjectCreate(BaseModel):
    model_config = STRICT_INPUT
    id: ProjectId
    name: Name
    repository_url: str = Field(max_length=2048, description=REPOSITORY_URL_HELP)
    primary_branch: str = Field(default="main", max_length=255)
    settings: dict[str, Any] = Field(default_factory=dict)

    _repo = field_validator("repository_url")(lambda cls, v: _check_repository_url(v))
    _branch = field_validator("primary_branch")(lambda cls, v: _check_branch(v))
    _settings = field_validator("settings")(lambda cls, v: _check_settings(v))


class ProjectPatch(BaseModel):
    model_config = STRICT_INPUT
    name: Optional[Name] = None
    repository_url: Optional[str] = Field(default=None, max_length=2048, description=REPOSITORY_URL_HELP)
    primary_branch: Optional[str] = Field(default=None, max_length=255)
    settings: Optional[dict[str, Any]] = None

    @field_validator("repository_url")
    @classmethod
    def _repo(cls, v: Optional[str]) -> Optional[str]:
        return v if v is None else _check_repository_url(v)

    @field_validator("primary_branch")
    @classmethod
    def _branch(cls, v: Optional[str]) -> Optional[str]:
        return v if v is None else _check_branch(v)

    @field_validator("settings")
    @classmethod
    def _settings(cls, v: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        return v if v is None else _check_settings(v)

    @model_validator(mode="after")
    def _something(self) -> "ProjectPatch":
        return check_patch(self, "give at least one of name, repository_url, primary_branch, settings")


class TaskSpec(BaseModel):
    model_config = STRICT_INPUT
    title: Title
    description: LongText = ""
    priority: Priority = 5


MAX_TASKS_PER_RUN_CREATE = 1000


class RunCreate(BaseModel):
    model_config = STRICT_INPUT
    title: Title
    stages: list[Stage] = Field(default_factory=lambda: list(DEFAULT_STAGES), min_length=1, max_length=4)
    max_iterations: int = Field(default=3, ge=1, le=20)
    parallelism: int = Field(default=4, ge=1, le=100)
    canary: Optional[Canary] = None
    ceilings: Ceilings = Field(default_factory=Ceilings)
    deploy_gate: bool = True
    finding_threshold: Optional[SeverityName] = Field(
        default=None, description="findings at or above this severity become fix tasks (default: the "
                                  "project's settings.finding_threshold, else medium)")
    queue_timeout_seconds: int = Field(
        default=DEFAULT_QUEUE_TIMEOUT_SECONDS, ge=1, le=365 * 86_400,
        description="a task unclaimed this long is reported (task.waiting_for_agent) and keeps waiting")
    tasks: list[TaskSpec] = Field(default_factory=list, max_length=MAX_TASKS_PER_RUN_CREATE)

    @field_validator("stages")
    @classmethod
    def _ordered_subset(cls, stages: list[Stage]) -> list[Stage]:
        for stage in stages:
            if stage not in PIPELINE_STAGES:
                raise ValueError(f"stage {stage.value!r} cannot be configured; use an ordered subset of dev, qa, sec, docs")
        order = [PIPELINE_STAGES.index(s) for s in stages]
        if order != sorted(set(order)):
            raise ValueError("stages must be distinct and in pipeline order: dev, qa, sec, docs")
        return stages


class TaskCreate(BaseModel):
    model_config = STRICT_INPUT
    title: Title
    description: LongText = ""
    priority: Priority = 5


class ClaimRequest(BaseModel):
    model_config = STRICT_INPUT
    stage: Stage
    agent_id: Name
    project_id: Optional[ProjectId] = None
    run_id: Optional[str] = Field(default=None, max_length=64)
    task_id: Optional[str] = Field(default=None, max_length=64, description="claim this task only")
    lease_seconds: int = Field(default=900, ge=10, le=3600)


class HeartbeatRequest(BaseModel):
    model_config = STRICT_INPUT
    claim_id: str = Field(min_length=1, max_length=64)
    lease_seconds: int = Field(default=900, ge=10, le=3600)


class AdvanceRequest(BaseModel):
    model_config = STRICT_INPUT
    claim_id: str = Field(min_length=1, max_length=64)
    result: AdvanceResult
    notes: LongText = ""


class SetStageRequest(BaseModel):
    model_config = STRICT_INPUT
    stage: Stage
    reason: str = Field(min_length=1, max_length=2000)


class KeyCreate(BaseModel):
    model_config = STRICT_INPUT
    name: Name
    principal: PrincipalKind
    project_ids: list[ProjectId] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _scoped(self) -> "KeyCreate":
        if self.principal != PrincipalKind.admin and not self.project_ids:
            raise ValueError("human and agent keys need at least one project id in project_ids")
        return self


class DirectorSettings(BaseModel):
    """Settings of the director (how Baton runs work), changed by admins.

    ``max_iterations_default`` is a new run's ``max_iterations`` when it gives none;
    ``include_images`` puts short-lived URLs of screenshot proofs in the task context (for a
    vision model or the next agent); ``vision_model`` and ``auto_advance`` are passed to agents in
    their context for their own use."""

    include_images: bool = True
    vision_model: str = ""
    auto_advance: bool = True
    max_iterations_default: int = 3
    version: int = 0
    updated_at: Optional[str] = None
    updated_by: Optional[str] = None


class DirectorSettingsPatch(BaseModel):
    model_config = STRICT_INPUT
    include_images: Optional[bool] = None
    vision_model: Optional[str] = Field(default=None, max_length=200)
    auto_advance: Optional[bool] = None
    max_iterations_default: Optional[int] = Field(default=None, ge=1, le=20)

    @model_validator(mode="after")
    def _something(self) -> "DirectorSettingsPatch":
        return check_patch(self, "give at least one setting to change")
