"""Stage jobs: POST /jobs/{job_id}/token, where a runner redeems its single-use launch code."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.base import DomainModel
from .http import endpoint, principal

bp = Blueprint(__name__)


class JobToken(DomainModel):
    token: str
    expires_at: str
    job_id: str
    task_id: str
    stage: str
    claim_id: str


@endpoint(bp, "/jobs/{job_id}/token", methods=["POST"], response=JobToken, status=201,
          summary="Redeem a job's launch code for its job token (once; Authorization: Bearer <launch code>)")
def redeem_launch_code(job_id):
    return 201, get_services().keys.redeem_launch_code(principal(), job_id)
