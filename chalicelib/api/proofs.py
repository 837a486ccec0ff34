"""Proofs: declare an upload (presigned POST), confirm it, read, download (302), read as text, list per
task and project."""

from chalice import Blueprint, Response

from ..bootstrap import get_services
from ..domain.proofs import EmptyBody, Proof, ProofCreate, ProofText, ProofUpload
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


@endpoint(bp, "/proofs/{proof_id}/text", response=ProofText,
          summary="A stored proof's first 512 KB as text (logs, diffs, reports), with a download URL")
def proof_text(proof_id):
    """Read through the API so that a browser page allowed to connect only to its own origin can show
    a log, a diff or a report; images are shown from their presigned URL instead (``text`` null)."""
    query(bp, set())
    return 200, get_services().proofs.read_text(principal(), proof_id)


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
