"""Tasks and the queue: read, claim, heartbeat, advance, set stage."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.models import AdvanceRequest, ClaimRequest, HeartbeatRequest, SetStageRequest
from .http import endpoint, parse_body, principal

bp = Blueprint(__name__)


@endpoint(bp, "/tasks/{task_id}")
def get_task(task_id):
    return 200, get_services().tasks.get(principal(), task_id)


@endpoint(bp, "/queue/claim", methods=["POST"])
def claim_task():
    request = parse_body(bp.current_request.raw_body, ClaimRequest)
    claimed = get_services().tasks.claim(principal(), request)
    if claimed is None:
        return 204, None
    task, claim = claimed
    return 200, {"task": task, "claim": claim}


@endpoint(bp, "/tasks/{task_id}/heartbeat", methods=["POST"])
def heartbeat_task(task_id):
    request = parse_body(bp.current_request.raw_body, HeartbeatRequest)
    return 200, {"expires_at": get_services().tasks.heartbeat(principal(), task_id, request)}


@endpoint(bp, "/tasks/{task_id}/advance", methods=["POST"])
def advance_task(task_id):
    request = parse_body(bp.current_request.raw_body, AdvanceRequest)
    return 200, get_services().tasks.advance(principal(), task_id, request)


@endpoint(bp, "/tasks/{task_id}/stage", methods=["POST"])
def set_task_stage(task_id):
    request = parse_body(bp.current_request.raw_body, SetStageRequest)
    return 200, get_services().tasks.set_stage(principal(), task_id, request)
