"""The entities: projects, runs (with their canary, ceilings and progress), tasks, audit events,
API keys, approvals, claims and the director settings."""

from typing import Any, Literal, Optional

from pydantic import Field, field_validator

from .base import DomainModel
from .enums import (DEFAULT_QUEUE_TIMEOUT_SECONDS, TERMINAL_TASK_STATUSES, ApprovalDecision, ApprovalStatus,
                    AttentionKind, AttentionStatus, CanaryState, CanaryTimeout, Hold, PrincipalKind, RunStatus, Stage,
                    TaskSource, TaskStatus)
from .fields import STRICT_INPUT, SeverityName
from .usage import UsageTotals


class StageRecord(DomainModel):
    """Something made on a task at one stage and iteration of its pipeline (a handoff, a proof)."""

    id: str
    task_id: str
    run_id: str
    project_id: str
    stage: str
    iteration: int


class Project(DomainModel):
    id: str
    name: str
    repository_url: str
    primary_branch: str = "main"
    settings: dict[str, Any] = Field(default_factory=dict)
    created_at: str
    updated_at: str
    created_by: str = ""
    version: int = 1


class Canary(DomainModel):
    """A run's canary: ``fraction`` of its tasks (at least ``min_tasks``) go first; the rest waits
    for the ``canary`` gate, decided by a person (or ``on_timeout`` after ``decision_timeout_seconds``)."""

    model_config = STRICT_INPUT
    fraction: float = Field(ge=0.001, le=0.5, allow_inf_nan=False,
                            description="share of the run's tasks that go first: 0.001 <= fraction <= 0.5")
    min_tasks: int = Field(default=1, ge=1, le=1000)
    max_failure_rate: Optional[float] = Field(
        default=None, ge=0, le=1, allow_inf_nan=False,
        description="above this share of canary tasks failed or looped back, the gate request says so and a "
                    "timeout never approves")
    decision_timeout_seconds: Optional[int] = Field(default=None, ge=60, le=30 * 86_400)
    on_timeout: Literal["reject", "approve"] = CanaryTimeout.reject.value

    @field_validator("max_failure_rate")
    @classmethod
    def _stored_as_given(cls, value: Optional[float]) -> Optional[float]:
        return None if value is None else round(value, 6)   # 1e-300 is 0 here, not a DynamoDB underflow

    @field_validator("fraction", mode="before")
    @classmethod
    def _int_is_fine(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value) if abs(value) <= 10 else 2.0   # a huge int is out of range, never an OverflowError
        return value


class Ceilings(DomainModel):
    model_config = STRICT_INPUT
    max_tasks: Optional[int] = Field(default=None, ge=1, le=10_000)
    max_fix_tasks: Optional[int] = Field(default=50, ge=0, le=10_000)
    max_cost_usd: Optional[float] = Field(default=None, ge=0.01, le=1_000_000, allow_inf_nan=False,
                                          description="the run's budget in USD, as agents report it")
    max_tokens: Optional[int] = Field(default=None, ge=1, le=10 ** 12,
                                      description="the run's budget in tokens (in + out), as agents report them")


class Progress(DomainModel):
    total: int
    by_stage: dict[str, int]
    by_status: dict[str, int]
    percent_complete: float


class Run(DomainModel):
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
    rollback_task_id: Optional[str] = None
    canary_salt: Optional[str] = None
    canary_cutoff: Optional[str] = None
    canary_state: Optional[CanaryState] = None
    gate: Optional[str] = Field(default=None, description="the gate the run waits at while awaiting_approval")
    queue_timeout_seconds: int = DEFAULT_QUEUE_TIMEOUT_SECONDS
    pinned_role_versions: dict[str, int] = Field(default_factory=dict, exclude=True)
    created_at: str
    created_by: str
    updated_at: str
    version: int = 1


class Task(DomainModel):
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
    canary: bool = False
    held: Optional[Hold] = Field(default=None, description="why it may not start yet (canary: until the gate)")
    usage: Optional[UsageTotals] = None
    outputs: dict[str, Any] = Field(default_factory=dict, description="what its stages produced (advance's outputs)")
    inputs: dict[str, Any] = Field(default_factory=dict, description="outputs of the task it depends on (a rollback: "
                                                                     "its release's)")
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
    execution: Optional[str] = Field(default=None, exclude=True)   # its execution's name, when not the task id
    # What the director knows and did about it (failure fingerprints, lease losses, notes, pause: a
    # ``domain.director.model.Supervision`` as stored, read with ``supervision_of``), and the failing
    # findings reported at its current stage and iteration ({stage, iteration, keys}).
    supervision: dict[str, Any] = Field(default_factory=dict, exclude=True)
    failing_findings: Optional[dict[str, Any]] = Field(default=None, exclude=True)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_TASK_STATUSES


class Event(DomainModel):
    seq: int
    at: str
    actor: str
    action: str
    entity: str
    data: dict[str, Any] = Field(default_factory=dict)


class ApiKey(DomainModel):
    id: str
    name: str
    principal: PrincipalKind
    project_ids: list[str]
    created_at: str
    created_by: str = ""
    revoked_at: Optional[str] = None


class Approval(DomainModel):
    gate: str
    status: ApprovalStatus
    requested_at: str
    decided_by: Optional[str] = None
    decided_at: Optional[str] = None
    decision: Optional[ApprovalDecision] = None
    comment: Optional[str] = None
    summary: dict[str, Any] = Field(default_factory=dict, description="what the gate is asked about "
                                    "(canary: how its tasks did; budget: what was used)")
    decide_by: Optional[str] = None


class AttentionItem(DomainModel):
    """Something that waits for a person (``GET /attention``), resolved by a person or by what
    it was about (a gate's decision)."""

    id: str
    kind: AttentionKind
    project_id: str
    run_id: str
    task_id: Optional[str] = None
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)
    status: AttentionStatus = AttentionStatus.open
    created_at: str
    resolved_by: Optional[str] = None
    resolved_at: Optional[str] = None
    comment: Optional[str] = None


class Claim(DomainModel):
    claim_id: str
    expires_at: str


class DirectorSettings(DomainModel):
    """Settings of the director (how Baton runs work, and how it supervises it), changed by admins.

    ``max_iterations_default`` is a new run's ``max_iterations`` when it gives none;
    ``include_images`` puts short-lived URLs of screenshot proofs in the task context (for a
    vision model or the next agent); ``vision_model`` and ``auto_advance`` are passed to agents in
    their context for their own use. The rest are the thresholds of the director's rules (0 turns a
    rule, or one of its actions, off)."""

    include_images: bool = True
    vision_model: str = ""
    auto_advance: bool = True
    max_iterations_default: int = 3
    director_enabled: bool = Field(default=True, description="the director's rules run (on each sweep and when a "
                                                             "stage fails or a lease expires)")
    same_failure_nudge_at: int = Field(default=2, description="the same failure in this many consecutive iterations: "
                                                              "a note in the next job's context and prompt")
    same_failure_escalate_at: int = Field(default=3, description="... this many: an escalation (attention item)")
    same_failure_pause_at: int = Field(default=0, description="... this many: the task is paused (0: never)")
    near_max_iterations_nudge: bool = Field(default=True, description="a note when a task starts its last iteration")
    lease_churn_escalate_at: int = Field(default=2, description="a stage job re-dispatched this many times (its lease "
                                                                "expired): an escalation, and a reassignment")
    reassign_on_lease_churn: bool = Field(default=True, description="lease churn moves the next job to the role's "
                                                                    "fallback_executor / fallback_agent_ids, if any")
    idle_queue_minutes: int = Field(default=30, description="queued tasks of an external role that no agent tried "
                                                            "to claim for this long: an idle_queue attention item")
    slow_stage_factor: float = Field(default=3.0, description="a stage job running this many times the median of "
                                                              "its peers in the run: a note for the next job")
    slow_stage_escalate_factor: float = Field(default=6.0, description="... this many times: an escalation")
    slow_stage_min_peers: int = Field(default=3, description="finished peers needed before a job counts as slow")
    slow_stage_min_seconds: int = Field(default=300, description="a job younger than this is never slow")
    budget_escalate_fraction: float = Field(default=0.9, description="a run that used this share of its budget: "
                                                                     "an escalation, once per budget")
    escalation_cooldown_minutes: int = Field(default=60, description="at most one escalation of a task this often")
    max_escalations_per_project_per_hour: int = Field(default=10, description="at most this many escalations of "
                                                                              "one project per clock hour")
    pause_on_escalation: bool = Field(default=False, description="every escalation of an open task also pauses it")
    version: int = 0
    updated_at: Optional[str] = None
    updated_by: Optional[str] = None
