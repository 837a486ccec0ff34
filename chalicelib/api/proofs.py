"""Proofs: declare an upload (presigned POST), confirm it, read, download (302), read as text, list per
task and project."""

from typing import Optional

from chalice import Blueprint, Response

from ..bootstrap import get_services
from ..domain.base import DomainModel
from ..domain.errors import ConflictError
from ..domain.proofs import (TEXT_ATTACHMENT_TYPE, EmptyBody, Proof, ProofCreate, ProofStatus, ProofUpload,
                             attachment_content_type, inline_image_type)
from ..domain.roles import ProofType
from .http import endpoint, page_body, parse_body, principal
from .query import enum_param, paging, query

bp = Blueprint(__name__)

PROOF_TYPES = {t.value for t in ProofType}


@endpoint(bp, "/tasks/{task_id}/proofs", methods=["POST"], body=ProofCreate, response=ProofUpload, status=201,
          summary="Declare a proof and get a presigned upload form")
def request_proof_upload(task_id):
    request = parse_body(bp.current_request.raw_body, ProofCreate)
    proof, upload = get_services().proofs.request_upload(principal(), task_id, request)
    return 201, ProofUpload(proof=proof, upload=upload)


@endpoint(bp, "/proofs/{proof_id}/confirm", methods=["POST"], response=Proof,
          summary="Confirm an upload: size, content type and sha256 checked against S3")
def confirm_proof(proof_id):
    parse_body(bp.current_request.raw_body, EmptyBody)
    return 200, get_services().proofs.confirm(principal(), proof_id)


@endpoint(bp, "/proofs/{proof_id}", response=Proof, summary="Get a proof")
def get_proof(proof_id):
    return 200, get_services().proofs.get(principal(), proof_id)


@endpoint(bp, "/proofs/{proof_id}/download", status=302, extra_statuses=(302,),
          summary="Download a proof (302 to a short-lived URL)")
def download_proof(proof_id):
    url = get_services().proofs.download_url(principal(), proof_id)
    return Response(body="", status_code=302, headers={"Location": url, "Cache-Control": "no-store",
                                                            "X-Content-Type-Options": "nosniff"})


class ProofText(DomainModel):
    proof_id: str
    content_type: str
    size: int
    text: Optional[str] = None       # None: not text (an image, an archive, bytes that are not UTF-8)
    truncated: bool = False          # the text is the first TEXT_LIMIT bytes of a larger proof
    download_url: str                # a short-lived presigned GET, always an attachment


TEXT_LIMIT = 512 * 1024


@endpoint(bp, "/proofs/{proof_id}/text", response=ProofText,
          summary="A stored proof's first 512 KB as text (logs, diffs, reports), with a download URL")
def proof_text(proof_id):
    """Read through the API so that a browser page allowed to connect only to its own origin can show
    a log, a diff or a report; images are shown from their presigned URL instead (``text`` null)."""
    query(bp, set())
    services = get_services()
    proof = services.proofs.get(principal(), proof_id)
    if proof.status != ProofStatus.stored:
        raise ConflictError(f"proof {proof.id} is {proof.status.value}: it has no content until it is uploaded "
                            "and confirmed", code="proof_not_stored")
    download_url = services.proofs.download_url(principal(), proof_id)
    text, truncated = None, False
    textual = attachment_content_type(proof.content_type) == TEXT_ATTACHMENT_TYPE
    if inline_image_type(proof.content_type) is None and (textual or proof.content_type.startswith("application/octet")):
        data = services.proofs.objects.read(proof.s3_key, TEXT_LIMIT + 1, version_id=proof.s3_version_id)
        truncated = len(data) > TEXT_LIMIT
        text = decoded(data[:TEXT_LIMIT], truncated, lenient=textual)
    return 200, ProofText(proof_id=proof.id, content_type=proof.content_type, size=proof.size, text=text,
                          truncated=truncated, download_url=download_url)


def decoded(data: bytes, cut: bool, *, lenient: bool) -> Optional[str]:
    """UTF-8 text, or None for bytes that are not text. A cut may split the last character; a
    declared text type keeps undecodable bytes as U+FFFD, anything else must decode cleanly."""
    if b"\x00" in data and not lenient:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        if cut and error.start >= len(data) - 3:
            return data[:error.start].decode("utf-8", errors="replace")
        return data.decode("utf-8", errors="replace") if lenient else None


@endpoint(bp, "/tasks/{task_id}/proofs", response=Proof, lists=True, query=("type", "limit", "cursor"),
          summary="Proofs of a task, newest first")
def list_task_proofs(task_id):
    params, limit, cursor = paging(bp, {"type"})
    proof_type = enum_param(params, "type", PROOF_TYPES)
    return 200, page_body(get_services().proofs.list_for_task(principal(), task_id, limit, cursor, proof_type))


@endpoint(bp, "/projects/{project_id}/proofs", response=Proof, lists=True,
          query=("type", "run_id", "limit", "cursor"), summary="Proof history of a project, newest first")
def list_project_proofs(project_id):
    params, limit, cursor = paging(bp, {"type", "run_id"})
    proof_type = enum_param(params, "type", PROOF_TYPES)
    page = get_services().proofs.list_for_project(principal(), project_id, limit, cursor, proof_type,
                                                  params.get("run_id"))
    return 200, page_body(page)
