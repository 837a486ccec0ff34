"""Tasks and the queue: read, claim, heartbeat, advance, set stage."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.auth import Principal
from ..domain.base import DomainModel
from ..domain.entities import Claim, Task
from ..domain.requests import AdvanceRequest, ClaimRequest, HeartbeatRequest, SetStageRequest
from .http import endpoint, parse_body, principal

bp = Blueprint(__name__)


class Claimed(DomainModel):
    task: Task
    claim: Claim


class Lease(DomainModel):
    expires_at: str


def under_claim(caller: Principal, claim_id: str) -> Principal:
    """The caller working under the claim its heartbeat or advance names (a job token's is bound)."""
    return caller if caller.claim_id else caller.model_copy(update={"claim_id": claim_id})


@endpoint(bp, "/tasks/{task_id}", response=Task, summary="Get a task")
def get_task(task_id):
    return 200, get_services().tasks.get(principal(), task_id)


@endpoint(bp, "/queue/claim", methods=["POST"], body=ClaimRequest, response=Claimed, extra_statuses=(204,),
          summary="Claim the next queued task at a stage")
def claim_task():
    request = parse_body(bp.current_request.raw_body, ClaimRequest)
    claimed = get_services().tasks.claim(principal(), request)
    if claimed is None:
        return 204, None
    task, claim = claimed
    return 200, {"task": task, "claim": claim}


@endpoint(bp, "/tasks/{task_id}/heartbeat", methods=["POST"], body=HeartbeatRequest, response=Lease,
          summary="Extend the lease of a claim")
def heartbeat_task(task_id):
    request = parse_body(bp.current_request.raw_body, HeartbeatRequest)
    services = get_services()
    expires_at = services.tasks.heartbeat(principal(), task_id, request)
    if request.usage is not None:
        services.usage.report(under_claim(principal(), request.claim_id), task_id, request.usage)
    return 200, {"expires_at": expires_at}


@endpoint(bp, "/tasks/{task_id}/advance", methods=["POST"], body=AdvanceRequest, response=Task,
          summary="Finish the stage: pass or fail")
def advance_task(task_id):
    request = parse_body(bp.current_request.raw_body, AdvanceRequest)
    services = get_services()
    if request.usage is not None:   # recorded first: the advance ends the job and its claim
        services.usage.report(under_claim(principal(), request.claim_id), task_id, request.usage)
    # A pass needs the proofs the stage's role requires, and no failing findings verdict of the
    # stage (checked after the lease, before the move).
    proofs_check = services.proofs.advance_check(request.result)
    verdict_check = services.fix_tasks.advance_check(request.result)

    def check(task, run_item):
        verdict_check(task, run_item)
        proofs_check(task, run_item)

    return 200, services.tasks.advance(principal(), task_id, request, check=check)


@endpoint(bp, "/tasks/{task_id}/stage", methods=["POST"], body=SetStageRequest, response=Task,
          summary="Move a task to a stage by hand (human/admin)")
def set_task_stage(task_id):
    request = parse_body(bp.current_request.raw_body, SetStageRequest)
    return 200, get_services().tasks.set_stage(principal(), task_id, request)
