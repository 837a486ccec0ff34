"""The task context: everything the next agent needs about a task, in one call.

At most three DynamoDB round trips however long the task's history:

1. one Query of the task's partition (``TASK#{id}``): the task itself, its stage jobs (the
   attempts), its handoffs and its proofs all sort under it (one more page only past 1 MB);
2. one BatchGetItem: the run and the project;
3. one GetItem: the role config version the run pinned for the task's stage.

Presigning the screenshots' URLs is local computation, not a call.
"""

from __future__ import annotations

from typing import Any, Optional

from ..adapters import keys
from ..adapters.dynamo import item_to_project, item_to_run, item_to_task
from ..adapters.evidence_store import EvidenceStore, item_to_handoff, item_to_proof
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import NotFoundError
from ..domain.evidence import Attempt, ProofView, RoleView, StageRequirements, TaskContext, missing_proofs
from ..domain.ids import is_valid_id
from ..domain.models import STAGE_ROLE
from .proofs import ProofService
from .roles import RoleService


def attempt_view(job: dict[str, Any]) -> Attempt:
    """A stage job as the context shows it: never its Step Functions token."""
    return Attempt(**{name: job[name] for name in Attempt.model_fields if name in job})


class ContextService:
    def __init__(self, evidence: EvidenceStore, roles: RoleService, proofs: ProofService):
        self.evidence = evidence
        self.roles = roles
        self.proofs = proofs

    def get(self, principal: Principal, task_id: str) -> TaskContext:
        items = self.evidence.task_partition(task_id) if is_valid_id(task_id, "task") else []
        meta = next((i for i in items if i["sk"] == keys.META), None)
        if meta is None:
            raise NotFoundError("task not found")
        task = item_to_task(meta)
        authorize(principal, Action.work, project_id=task.project_id, task_id=task.id, what="task")

        def newest_first(prefix: str) -> list[dict[str, Any]]:
            return sorted((i for i in items if i["sk"].startswith(prefix)), key=lambda i: i["sk"], reverse=True)

        handoffs = [item_to_handoff(i) for i in newest_first(keys.HANDOFF_PREFIX)]
        proofs = [item_to_proof(i) for i in newest_first(keys.PROOF_PREFIX)]
        attempts = [attempt_view(i) for i in newest_first(keys.JOB_PREFIX)]

        found = self.evidence.batch_get([keys.run(task.run_id), keys.project(task.project_id),
                                         keys.director_settings()])
        settings = next((i for i in found if i["pk"] == keys.director_settings()["pk"]), None) or {}
        run_item = next((i for i in found if i["pk"] == keys.run(task.run_id)["pk"]), None)
        project_item = next((i for i in found if i["pk"] == keys.project(task.project_id)["pk"]), None)
        if run_item is None or project_item is None:
            raise NotFoundError("the task's run or project no longer exists")

        role: Optional[RoleView] = None
        requirements = StageRequirements(stage=task.stage.value, iteration=task.iteration)
        if task.stage in STAGE_ROLE:
            config = self.roles.pinned_for_stage(run_item, task.stage)
            role = RoleView(role=config.role, version=config.version, digest=config.digest, prompt=config.prompt,
                            required_proofs=config.required_proofs)
            requirements = StageRequirements(
                stage=task.stage.value, iteration=task.iteration, required_proofs=config.required_proofs,
                missing=missing_proofs(config.required_proofs, proofs, stage=task.stage.value,
                                       iteration=task.iteration))
        with_images = bool(settings.get("include_images", True))
        views = [ProofView(**proof.model_dump(), **((self.proofs.view_url(proof) if with_images else None) or {}))
                 for proof in proofs]
        return TaskContext(task=task, run=item_to_run(run_item), project=item_to_project(project_item), role=role,
                           handoffs=handoffs, proofs=views, attempts=attempts, requirements=requirements)
