"""Request bodies: what a client may send, validated strictly at the edge (unknown fields refused)."""

import json
from typing import Any, Optional

from pydantic import Field, field_validator, model_validator

from .base import DomainModel
from .entities import Canary, Ceilings
from .enums import (DEFAULT_QUEUE_TIMEOUT_SECONDS, DEFAULT_STAGES, PIPELINE_STAGES, AdvanceResult, ApprovalDecision,
                    PrincipalKind, Stage)
from .fields import (STRICT_INPUT, LongText, Name, Priority, ProjectId, SeverityName, Title, check_branch, check_patch,
                     check_repository_url_field, check_settings)
from .repository_url import REPOSITORY_URL_HELP
from .usage import UsageReport

MAX_OUTPUTS_BYTES = 16 * 1024


class ApprovalRequest(DomainModel):
    model_config = STRICT_INPUT
    decision: ApprovalDecision
    comment: str = Field(default="", max_length=2000)
    raise_cost_usd: Optional[float] = Field(default=None, ge=0.01, le=1_000_000, allow_inf_nan=False,
                                            description="budget gate: add this much to max_cost_usd")
    raise_tokens: Optional[int] = Field(default=None, ge=1, le=10 ** 12,
                                        description="budget gate: add this many to max_tokens")


class ProjectCreate(DomainModel):
    model_config = STRICT_INPUT
    id: ProjectId
    name: Name
    repository_url: str = Field(max_length=2048, description=REPOSITORY_URL_HELP)
    primary_branch: str = Field(default="main", max_length=255)
    settings: dict[str, Any] = Field(default_factory=dict)

    _repo = field_validator("repository_url")(lambda cls, v: check_repository_url_field(v))
    _branch = field_validator("primary_branch")(lambda cls, v: check_branch(v))
    _settings = field_validator("settings")(lambda cls, v: check_settings(v))


class ProjectPatch(DomainModel):
    model_config = STRICT_INPUT
    name: Optional[Name] = None
    repository_url: Optional[str] = Field(default=None, max_length=2048, description=REPOSITORY_URL_HELP)
    primary_branch: Optional[str] = Field(default=None, max_length=255)
    settings: Optional[dict[str, Any]] = None

    @field_validator("repository_url")
    @classmethod
    def _repo(cls, v: Optional[str]) -> Optional[str]:
        return v if v is None else check_repository_url_field(v)

    @field_validator("primary_branch")
    @classmethod
    def _branch(cls, v: Optional[str]) -> Optional[str]:
        return v if v is None else check_branch(v)

    @field_validator("settings")
    @classmethod
    def _settings(cls, v: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        return v if v is None else check_settings(v)

    @model_validator(mode="after")
    def _something(self) -> "ProjectPatch":
        return check_patch(self, "give at least one of name, repository_url, primary_branch, settings")


class TaskSpec(DomainModel):
    model_config = STRICT_INPUT
    title: Title
    description: LongText = ""
    priority: Priority = 5


MAX_TASKS_PER_RUN_CREATE = 1000


class RunCreate(DomainModel):
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


class TaskCreate(DomainModel):
    model_config = STRICT_INPUT
    title: Title
    description: LongText = ""
    priority: Priority = 5


class ClaimRequest(DomainModel):
    model_config = STRICT_INPUT
    stage: Stage
    agent_id: Name
    project_id: Optional[ProjectId] = None
    run_id: Optional[str] = Field(default=None, max_length=64)
    task_id: Optional[str] = Field(default=None, max_length=64, description="claim this task only")
    lease_seconds: int = Field(default=900, ge=10, le=3600)


class HeartbeatRequest(DomainModel):
    model_config = STRICT_INPUT
    claim_id: str = Field(min_length=1, max_length=64)
    lease_seconds: int = Field(default=900, ge=10, le=3600)
    usage: Optional[UsageReport] = None


class FailureReport(DomainModel):
    """What a failed stage failed on, for the director's "same failure again" rule (never a verdict)."""

    model_config = STRICT_INPUT
    failing_tests: list[str] = Field(default_factory=list, max_length=200,
                                     description="names of the failing tests (e.g. from the stage's JUnit XML)")
    error: str = Field(default="", max_length=2000, description="the error line of the agent's output")

    @field_validator("failing_tests")
    @classmethod
    def _short_names(cls, names: list[str]) -> list[str]:
        if any(len(name) > 500 for name in names):
            raise ValueError("a failing test's name is at most 500 characters")
        return names


class AdvanceRequest(DomainModel):
    model_config = STRICT_INPUT
    claim_id: str = Field(min_length=1, max_length=64)
    result: AdvanceResult
    notes: LongText = ""
    failure: Optional[FailureReport] = Field(
        default=None, description="with result fail: the failing tests and the error line, which the director "
                                  "compares across iterations (without it, the error line of the notes)")
    outputs: Optional[dict[str, Any]] = Field(
        default=None, description="what the stage produced for later tasks, e.g. {release_commit, base_commit} "
                                  "(a JSON object of at most 16 KB)")
    usage: Optional[UsageReport] = None

    @field_validator("outputs")
    @classmethod
    def _small(cls, value: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        if value is not None and len(json.dumps(value, separators=(",", ":"))) > MAX_OUTPUTS_BYTES:
            raise ValueError(f"outputs must be at most {MAX_OUTPUTS_BYTES // 1024} KB of JSON")
        return value


class ResolveRequest(DomainModel):
    model_config = STRICT_INPUT
    comment: str = Field(default="", max_length=2000)


class RollbackRequest(DomainModel):
    model_config = STRICT_INPUT
    reason: str = Field(min_length=1, max_length=2000)


class SetStageRequest(DomainModel):
    model_config = STRICT_INPUT
    stage: Stage
    reason: str = Field(min_length=1, max_length=2000)


class KeyCreate(DomainModel):
    model_config = STRICT_INPUT
    name: Name
    principal: PrincipalKind
    project_ids: list[ProjectId] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _scoped(self) -> "KeyCreate":
        if self.principal != PrincipalKind.admin and not self.project_ids:
            raise ValueError("human and agent keys need at least one project id in project_ids")
        return self


class DirectorSettingsPatch(DomainModel):
    model_config = STRICT_INPUT
    include_images: Optional[bool] = None
    vision_model: Optional[str] = Field(default=None, max_length=200)
    auto_advance: Optional[bool] = None
    max_iterations_default: Optional[int] = Field(default=None, ge=1, le=20)
    director_enabled: Optional[bool] = None
    same_failure_nudge_at: Optional[int] = Field(default=None, ge=0, le=50)
    same_failure_escalate_at: Optional[int] = Field(default=None, ge=0, le=50)
    same_failure_pause_at: Optional[int] = Field(default=None, ge=0, le=50)
    near_max_iterations_nudge: Optional[bool] = None
    lease_churn_escalate_at: Optional[int] = Field(default=None, ge=0, le=50)
    reassign_on_lease_churn: Optional[bool] = None
    idle_queue_minutes: Optional[int] = Field(default=None, ge=0, le=30 * 24 * 60)
    slow_stage_factor: Optional[float] = Field(default=None, ge=0, le=1000, allow_inf_nan=False)
    slow_stage_escalate_factor: Optional[float] = Field(default=None, ge=0, le=1000, allow_inf_nan=False)
    slow_stage_min_peers: Optional[int] = Field(default=None, ge=1, le=1000)
    slow_stage_min_seconds: Optional[int] = Field(default=None, ge=0, le=7 * 86_400)
    budget_escalate_fraction: Optional[float] = Field(default=None, ge=0, lt=1, allow_inf_nan=False)
    escalation_cooldown_minutes: Optional[int] = Field(default=None, ge=0, le=7 * 24 * 60)
    max_escalations_per_project_per_hour: Optional[int] = Field(default=None, ge=0, le=10_000)
    pause_on_escalation: Optional[bool] = None

    @field_validator("same_failure_nudge_at", "same_failure_escalate_at", "same_failure_pause_at")
    @classmethod
    def _a_repeat(cls, value: Optional[int]) -> Optional[int]:
        if value == 1:
            raise ValueError("the same failure happens at least twice: give 2 or more (0 turns the action off)")
        return value

    @model_validator(mode="after")
    def _something(self) -> "DirectorSettingsPatch":
        return check_patch(self, "give at least one setting to change")
