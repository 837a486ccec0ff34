"""The task context: everything the next agent needs about a task, as ``GET /tasks/{id}/context``
answers it."""

from typing import Optional

from pydantic import Field

from .base import DomainModel
from .director.vocabulary import DirectorNote
from .entities import Project, Run, Task
from .enums import Role
from .handoffs import Handoff
from .proofs import Proof
from .roles import ProofType


class RoleView(DomainModel):
    role: Role
    version: int
    digest: str
    prompt: str
    required_proofs: list[ProofType] = Field(default_factory=list)


class ProofView(Proof):
    url: Optional[str] = Field(default=None, description="short-lived inline URL of a stored raster image (png, "
                                                         "jpeg, gif, webp); null for anything else")
    url_expires_at: Optional[str] = None


class Attempt(DomainModel):
    """A stage job of the task (its Step Functions token is never shown)."""

    job_id: str
    dispatch: int
    stage: str
    iteration: int
    attempt: int = 1
    role: Optional[str] = None
    role_version: Optional[int] = None
    role_digest: Optional[str] = None
    executor: Optional[str] = None
    status: Optional[str] = None
    created_at: Optional[str] = None
    launched_at: Optional[str] = None


class StageRequirements(DomainModel):
    stage: str
    iteration: int
    required_proofs: list[ProofType] = Field(default_factory=list)
    missing: list[ProofType] = Field(default_factory=list, description="required, not stored yet for this "
                                                                       "stage and iteration")


class TaskContext(DomainModel):
    """``GET /tasks/{task_id}/context``: everything the next agent needs, newest first."""

    task: Task
    run: Run
    project: Project
    role: Optional[RoleView] = Field(description="the role config version the run pinned for the task's stage "
                                                 "(null once the task is complete)")
    handoffs: list[Handoff]
    proofs: list[ProofView]
    attempts: list[Attempt]
    requirements: StageRequirements
    director_notes: list[DirectorNote] = Field(
        default_factory=list, description="what Baton's director noticed about this task (the same failure again, "
                                          "its last iteration, a slow stage), oldest first: the runner adds them to "
                                          "the agent's prompt")
    handoffs_next_cursor: Optional[str] = Field(
        default=None, description="more (older) handoffs: GET /tasks/{task_id}/handoffs?cursor=…")
    proofs_next_cursor: Optional[str] = Field(
        default=None, description="more (older) proofs: GET /tasks/{task_id}/proofs?cursor=…")
