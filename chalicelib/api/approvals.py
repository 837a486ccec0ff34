"""Approval gates of a run: GET /runs/{run_id}/approvals, POST /runs/{run_id}/approvals/{gate}."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.entities import Approval
from ..domain.requests import ApprovalRequest
from .http import endpoint, parse_body, principal
from .query import query

bp = Blueprint(__name__)


@endpoint(bp, "/runs/{run_id}/approvals", response=Approval, lists=True, summary="Approval gates of a run")
def list_approvals(run_id):
    query(bp, set())
    return 200, {"items": get_services().approvals.list(principal(), run_id), "next_cursor": None}


@endpoint(bp, "/runs/{run_id}/approvals/{gate}", methods=["POST"], body=ApprovalRequest, response=Approval,
          summary="Approve or reject a gate (humans only)")
def decide_approval(run_id, gate):
    request = parse_body(bp.current_request.raw_body, ApprovalRequest)
    return 200, get_services().approvals.decide(principal(), run_id, gate, request)
