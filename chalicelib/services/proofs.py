"""Proofs: an agent declares a file, uploads it straight to S3, and Baton checks what arrived.

1. ``request_upload``: the declaration (type, filename, content type, size, sha256) becomes a
   ``pending`` proof and a presigned POST that S3 accepts only for that key, that exact content
   type and that exact size, for 15 minutes.
2. ``confirm``: the object's size and content type (HEAD) and its SHA-256 (read back) must match
   the declaration; then the proof is ``stored``. A mismatch deletes the object and leaves the
   proof ``pending``: nothing that differs from the declaration is ever ``stored``.
3. ``download_url``: a short-lived presigned GET of a stored proof, always an attachment.

Content safety: a declaration's content type must fit its proof type (screenshots are raster
images only: png, jpeg, gif, webp; see ``domain.proofs.ALLOWED_CONTENT_TYPES``), else 422
``content_type_not_allowed``. Every presigned GET names its Content-Disposition and Content-Type:
only a raster image is ever inline (the context's ``url``), as exactly its image type; everything
else is an attachment served as plain text or ``application/octet-stream``.

Stage requirements: before a task passes a stage, every proof type the stage's role (as pinned by
the run) requires must be stored for the task's current stage and iteration.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Optional

from ..adapters.dynamodb import Page, Repositories
from ..adapters.dynamodb.proofs import ProofRepository
from ..adapters.proofs_s3 import ProofStore
from ..domain import clock, ids
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import ConflictError, InvalidInputError, NotFoundError, PayloadTooLargeError, RuleViolationError
from ..domain.proofs import DOWNLOAD_EXPIRES_SECONDS, IMAGE_URL_EXPIRES_SECONDS, MB, TEXT_ATTACHMENT_TYPE, TEXT_LIMIT, UPLOAD_EXPIRES_SECONDS, Proof, ProofCreate, ProofStatus, ProofText, UploadForm, attachment_content_type, check_proof_content_type, inline_image_type, may_be_text, missing_proofs, proof_object_key, size_limit, text_of
from ..domain.ids import is_valid_id, new_id
from ..domain.entities import Task
from ..domain.enums import STAGE_ROLE, AdvanceResult
from ..domain.roles import ProofType
from .projects import ProjectService
from .roles import RoleService
from .tasks import TaskService

logger = logging.getLogger("baton.proofs")



def _megabytes(size: int) -> str:
    return f"{size / MB:g} MB"



def cited_proofs(proofs: ProofRepository, proof_ids: list[str], *, belongs: Callable[[Proof], bool],
                 owner: str, when: str) -> list[Proof]:
    """The stored proofs a document cites (a handoff, a bug report), in the order cited.

    Each id must name a proof that ``belongs`` (to the task, or the project: ``owner`` says which
    in the error) and that is stored; otherwise 422 naming the offending ids. ``when`` ends the
    message about proofs still pending (what to do before citing them).
    """
    if not proof_ids:
        return []
    found = proofs.get_many(p for p in proof_ids if is_valid_id(p, ids.PROOF))
    unknown = [p for p in proof_ids if p not in found or not belongs(found[p])]
    if unknown:
        raise RuleViolationError(f"proof_ids must name proofs of {owner}; not found: {', '.join(unknown)}",
                                 code="unknown_proofs", details=[{"loc": ["proof_ids"], "unknown": unknown}])
    pending = [p for p in proof_ids if found[p].status != ProofStatus.stored]
    if pending:
        raise RuleViolationError(f"proofs {', '.join(pending)} are not stored yet: upload and confirm them {when}",
                                 code="proofs_not_stored", details=[{"loc": ["proof_ids"], "pending": pending}])
    return [found[p] for p in proof_ids]

class ProofService:
    def __init__(self, repos: Repositories, objects: Optional[ProofStore], tasks: TaskService,
                 projects: ProjectService, roles: RoleService, *, size_limits: Mapping[str, int]):
        self.repos = repos
        self._objects = objects
        self.tasks = tasks
        self.projects = projects
        self.roles = roles
        unknown = set(size_limits) - {"default"} - {t.value for t in ProofType}
        if unknown:
            raise ValueError(f"proof size limits name unknown proof types: {', '.join(sorted(unknown))}")
        self.size_limits = dict(size_limits)

    @property
    def objects(self) -> ProofStore:
        if self._objects is None:
            raise RuntimeError("no proof bucket is configured: set BATON_BUCKET")
        return self._objects

    # ---- reads

    def get(self, principal: Principal, proof_id: str, action: Action = Action.read) -> Proof:
        proof = self.repos.proofs.get(proof_id) if is_valid_id(proof_id, ids.PROOF) else None
        if proof is None:
            raise NotFoundError("proof not found")
        authorize(principal, action, project_id=proof.project_id, task_id=proof.task_id, what="proof")
        return proof

    def list_for_task(self, principal: Principal, task_id: str, limit: int, cursor: Optional[str],
                      proof_type: Optional[str] = None) -> Page:
        self.tasks.get(principal, task_id)
        return self.repos.proofs.of_task(task_id, limit, cursor, proof_type)

    def list_for_project(self, principal: Principal, project_id: str, limit: int, cursor: Optional[str],
                         proof_type: Optional[str] = None, run_id: Optional[str] = None) -> Page:
        self.projects.get(principal, project_id)
        if run_id is not None and not is_valid_id(run_id, ids.RUN):
            raise InvalidInputError("run_id must be a run id (run_...)", code="invalid_query")
        return self.repos.proofs.of_project(project_id, limit, cursor, proof_type, run_id)

    def download_url(self, principal: Principal, proof_id: str) -> str:
        """A short-lived presigned GET of a stored proof: always an attachment, served as its raster
        image type, as plain text or as ``application/octet-stream`` (never as HTML, SVG or script,
        whatever the declaration said)."""
        proof = self.get(principal, proof_id)
        if proof.status != ProofStatus.stored:
            raise ConflictError(f"proof {proof.id} is {proof.status.value}: upload the file and confirm it before "
                                "downloading", code="proof_not_stored")
        return self._attachment_url(proof)

    def _attachment_url(self, proof: Proof) -> str:
        return self.objects.presigned_get(proof.s3_key, expires_in=DOWNLOAD_EXPIRES_SECONDS, filename=proof.filename,
                                          content_type=attachment_content_type(proof.content_type),
                                          version_id=proof.s3_version_id)

    def read_text(self, principal: Principal, proof_id: str) -> ProofText:
        """A stored proof's first ``TEXT_LIMIT`` bytes as text (logs, diffs, reports), with its download
        URL, so that a page allowed to connect only to its own origin can show it; an image, or bytes
        that are not text, have ``text`` None (one GetItem, and one S3 read for a text type)."""
        proof = self.get(principal, proof_id)
        if proof.status != ProofStatus.stored:
            raise ConflictError(f"proof {proof.id} is {proof.status.value}: it has no content until it is uploaded "
                                "and confirmed", code="proof_not_stored")
        text, truncated = None, False
        if may_be_text(proof.content_type):
            data = self.objects.read(proof.s3_key, TEXT_LIMIT + 1, version_id=proof.s3_version_id)
            truncated = len(data) > TEXT_LIMIT
            text = text_of(data[:TEXT_LIMIT], truncated,
                           lenient=attachment_content_type(proof.content_type) == TEXT_ATTACHMENT_TYPE)
        return ProofText(proof_id=proof.id, content_type=proof.content_type, size=proof.size, text=text,
                         truncated=truncated, download_url=self._attachment_url(proof))

    def view_url(self, proof: Proof) -> Optional[dict[str, str]]:
        """A short-lived inline URL of a stored raster image (png, jpeg, gif, webp; no AWS call),
        served as exactly that image type; None for anything else (SVG included), whatever the
        proof's type."""
        image_type = inline_image_type(proof.content_type)
        if proof.status != ProofStatus.stored or image_type is None or self._objects is None:
            return None
        url = self.objects.presigned_get(proof.s3_key, expires_in=IMAGE_URL_EXPIRES_SECONDS, filename=proof.filename,
                                         content_type=image_type, inline=True, version_id=proof.s3_version_id)
        return {"url": url, "url_expires_at": clock.plus_seconds(clock.now_iso(), IMAGE_URL_EXPIRES_SECONDS)}

    # ---- upload

    def request_upload(self, principal: Principal, task_id: str, request: ProofCreate) -> tuple[Proof, UploadForm]:
        task = self.tasks.get_under_claim(principal, task_id)
        check_proof_content_type(request.type, request.content_type)
        limit = size_limit(request.type, self.size_limits)
        if request.size > limit:
            raise PayloadTooLargeError(
                f"a {request.type.value} proof may be at most {limit} bytes ({_megabytes(limit)}); this one declares "
                f"{request.size} bytes: compress or split it", code="proof_too_large")
        now = clock.now_iso()
        proof_id = new_id(ids.PROOF)
        key = proof_object_key(project_id=task.project_id, run_id=task.run_id, task_id=task.id,
                               stage=task.stage.value, iteration=task.iteration, proof_type=request.type.value,
                               proof_id=proof_id, filename=request.filename)
        proof = Proof(id=proof_id, task_id=task.id, run_id=task.run_id, project_id=task.project_id,
                      stage=task.stage.value, iteration=task.iteration, type=request.type, filename=request.filename,
                      content_type=request.content_type, size=request.size, sha256=request.sha256, s3_key=key,
                      status=ProofStatus.pending, uploaded_by=principal.actor, created_at=now)
        form = self.objects.presigned_post(key, content_type=request.content_type, size=request.size,
                                           expires_in=UPLOAD_EXPIRES_SECONDS)
        with self.repos.proofs.within_cap(task.id):
            self.repos.audit.commit(run_id=task.run_id, actor=principal.actor, action="proof.requested",
                              entity=f"proof:{proof.id}",
                              data={"task_id": task.id, "type": request.type.value, "filename": request.filename,
                                    "size": request.size, "stage": task.stage.value, "iteration": task.iteration},
                              operations=self.repos.proofs.create_ops(proof))
        upload = UploadForm(url=form["url"], fields=dict(form["fields"]),
                            expires_at=clock.plus_seconds(now, UPLOAD_EXPIRES_SECONDS))
        return proof, upload

    def confirm(self, principal: Principal, proof_id: str) -> Proof:
        proof = self.get(principal, proof_id, Action.work)
        self.tasks.get_under_claim(principal, proof.task_id)   # an agent confirms only under its live claim
        if proof.status == ProofStatus.stored:
            return proof
        found = self.objects.head(proof.s3_key)
        if found is None:
            raise ConflictError(f"nothing was uploaded for proof {proof.id} yet: POST the file to the upload url with "
                                "its fields, then confirm", code="proof_not_uploaded")
        problems = []
        if found.size != proof.size:
            problems.append(f"it is {found.size} bytes, the declaration says {proof.size}")
        if found.content_type.strip().lower() != proof.content_type.strip().lower():
            problems.append(f"its content type is {found.content_type!r}, the declaration says {proof.content_type!r}")
        if not problems:
            digest = self.objects.sha256(proof.s3_key, found.version_id)
            if digest != proof.sha256:
                problems.append(f"its sha256 is {digest}, the declaration says {proof.sha256}")
        if problems:
            self.objects.delete(proof.s3_key, found.version_id)
            logger.warning("proof %s rejected and its object deleted: %s", proof.id, "; ".join(problems),
                           extra={"task_id": proof.task_id, "proof_id": proof.id})
            raise RuleViolationError(
                f"the uploaded file does not match proof {proof.id}: {'; '.join(problems)}. The upload was deleted; "
                "upload the declared file again, or declare a new proof", code="proof_mismatch",
                details=[{"loc": ["upload"], "msg": p} for p in problems])
        # The form stays valid until it expires: pinning the checked version keeps a later overwrite
        # (same size and type, other bytes) from ever being served as this proof.
        stored = proof.model_copy(update={"status": ProofStatus.stored, "confirmed_at": clock.now_iso(),
                                          "s3_version_id": found.version_id})
        try:
            self.repos.audit.commit(run_id=proof.run_id, actor=principal.actor, action="proof.stored",
                              entity=f"proof:{proof.id}",
                              data={"task_id": proof.task_id, "type": proof.type.value, "size": proof.size,
                                    "sha256": proof.sha256},
                              operations=[self.repos.proofs.store_op(stored)])
        except ConflictError:
            current = self.repos.proofs.get(proof.id)
            if current is not None and current.status == ProofStatus.stored:
                return current      # confirmed concurrently: same object, same answer
            raise
        return stored

    # ---- stage requirements

    def advance_check(self, result: AdvanceResult) -> Callable[[Task, dict[str, Any]], None]:
        """The ``check`` hook of ``TaskService.advance``: a pass needs the stage's required proofs."""

        def check(task: Task, run_item: dict[str, Any]) -> None:
            if result == AdvanceResult.pass_:
                self.require_stage_proofs(task, run_item)

        return check

    def require_stage_proofs(self, task: Task, run_item: dict[str, Any]) -> None:
        if task.stage not in STAGE_ROLE:
            return
        config = self.roles.pinned_for_stage(run_item, task.stage)
        if not config.required_proofs:
            return
        stored = self.repos.proofs.stored_of_stage(task.id, task.stage.value, task.iteration)
        missing = missing_proofs(config.required_proofs, stored, stage=task.stage.value, iteration=task.iteration)
        if missing:
            raise RuleViolationError(
                f"stage {task.stage.value} (iteration {task.iteration}) of task {task.id} cannot pass without "
                f"a stored proof of type {', '.join(missing)} (the {config.role.value} role requires "
                f"{', '.join(p.value for p in config.required_proofs)}); upload it with POST /tasks/{task.id}/proofs "
                "and confirm it, then advance again", code="missing_proofs",
                details=[{"loc": ["proofs"], "missing": missing,
                          "required": [p.value for p in config.required_proofs]}])
