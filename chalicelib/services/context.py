"""The task context: everything the next agent needs about a task, in one call.

Bounded work however long the task's history: the latest handoffs (at most ``CONTEXT_HANDOFFS``
and ``CONTEXT_HANDOFF_BYTES`` of them), proofs and attempts, with cursors into
``GET /tasks/{id}/handoffs`` and ``/proofs`` for the rest, so the answer stays far below Lambda's
6 MB response limit whatever was posted. Round trips: one Query each for the task with its latest
jobs, its handoffs and its proofs (all in the task's partition ``TASK#{id}``), one BatchGetItem (run,
project, director settings). The current stage's stored proofs (when its role requires some) come
from the proofs page when it holds all of the task's proofs (else one more Query), and the pinned
role version from the role repository, which keeps the immutable versions it read (one GetItem per
version and container).

Presigning the screenshots' URLs is local computation, not a call.
"""

from __future__ import annotations

from typing import Any, Optional

from ..adapters.dynamodb import Repositories
from ..adapters.dynamodb.runs import item_to_run
from ..domain import ids
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import NotFoundError
from ..domain.director.model import supervision_of
from ..domain.context import Attempt, ProofView, RoleView, StageRequirements, TaskContext
from ..domain.proofs import missing_proofs
from ..domain.ids import is_valid_id
from ..domain.enums import STAGE_ROLE
from .proofs import ProofService
from .roles import RoleService


CONTEXT_HANDOFFS = 10
CONTEXT_HANDOFF_BYTES = 1_000_000
CONTEXT_PROOFS = 50
CONTEXT_ATTEMPTS = 20


def attempt_view(job: dict[str, Any]) -> Attempt:
    """A stage job as the context shows it: never its Step Functions token."""
    return Attempt(**{name: job[name] for name in Attempt.model_fields if name in job})


class ContextService:
    def __init__(self, repos: Repositories, roles: RoleService, proofs: ProofService):
        self.repos = repos
        self.roles = roles
        self.proofs = proofs

    def get(self, principal: Principal, task_id: str) -> TaskContext:
        task, jobs = self.repos.tasks.with_latest_jobs(task_id, CONTEXT_ATTEMPTS) if is_valid_id(task_id, ids.TASK) \
            else (None, [])
        if task is None:
            raise NotFoundError("task not found")
        authorize(principal, Action.work, project_id=task.project_id, task_id=task.id, what="task")
        attempts = [attempt_view(i) for i in jobs]
        handoff_page = self.repos.handoffs.of_task(task.id, CONTEXT_HANDOFFS, None)
        handoffs, handoffs_cursor = within_budget(handoff_page.items, CONTEXT_HANDOFF_BYTES, handoff_page.next_cursor,
                                                  self.repos.handoffs.cursor_after)
        proof_page = self.repos.proofs.of_task(task.id, CONTEXT_PROOFS, None)
        proofs = proof_page.items

        run_item, project, settings = self.repos.run_project_and_settings(task.run_id, task.project_id)
        if run_item is None or project is None:
            raise NotFoundError("the task's run or project no longer exists")

        role: Optional[RoleView] = None
        requirements = StageRequirements(stage=task.stage.value, iteration=task.iteration)
        if task.stage in STAGE_ROLE:
            config = self.roles.pinned_for_stage(run_item, task.stage)
            role = RoleView(role=config.role, version=config.version, digest=config.digest, prompt=config.prompt,
                            required_proofs=config.required_proofs)
            stage_proofs = all_proofs(proof_page) if config.required_proofs else []
            if stage_proofs is None:   # the task has more proofs than the page: ask for the stage's own
                stage_proofs = self.repos.proofs.stored_of_stage(task.id, task.stage.value, task.iteration)
            requirements = StageRequirements(
                stage=task.stage.value, iteration=task.iteration, required_proofs=config.required_proofs,
                missing=missing_proofs(config.required_proofs, stage_proofs, stage=task.stage.value,
                                       iteration=task.iteration))
        with_images = bool(settings.get("include_images", True))
        views = [ProofView(**proof.model_dump(), **((self.proofs.view_url(proof) if with_images else None) or {}))
                 for proof in proofs]
        return TaskContext(task=task, run=item_to_run(run_item), project=project, role=role,
                           handoffs=handoffs, proofs=views, attempts=attempts, requirements=requirements,
                           handoffs_next_cursor=handoffs_cursor, proofs_next_cursor=proof_page.next_cursor,
                           director_notes=supervision_of(task).notes)


def all_proofs(page: Any) -> Optional[list[Any]]:
    """The task's proofs when the page of its newest holds all of them (no next page), for
    ``missing_proofs`` to pick the stage's stored ones from; None when they must be read."""
    return None if page.next_cursor else page.items


def within_budget(handoffs: list[Any], budget: int, next_cursor: Optional[str],
                  cursor_after: Any) -> tuple[list[Any], Optional[str]]:
    """The newest handoffs whose JSON fits ``budget`` bytes (at least one), and the cursor of the rest."""
    kept: list[Any] = []
    used = 0
    for handoff in handoffs:
        size = len(handoff.model_dump_json())
        if kept and used + size > budget:
            return kept, cursor_after(kept[-1])
        kept.append(handoff)
        used += size
    return kept, next_cursor
