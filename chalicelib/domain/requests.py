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


class AdvanceRequest(DomainModel):
    model_config = STRICT_INPUT
    claim_id: str = Field(min_length=1, max_length=64)
    result: AdvanceResult
    notes: LongText = ""
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

    @model_validator(mode="after")
    def _something(self) -> "DirectorSettingsPatch":
        return check_patch(self, "give at least one setting to change")
