"""Usage and budgets: POST /tasks/{task_id}/usage, GET /runs/{run_id}/usage."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.base import DomainModel
from ..domain.usage import RunUsage, UsageReport, UsageTotals
from .http import endpoint, parse_body, principal
from .query import query

bp = Blueprint(__name__)


class RunUsageNow(DomainModel):
    cost_usd: float
    tokens: int
    budget: dict


class UsageRecorded(DomainModel):
    task_usage: UsageTotals
    run_usage: RunUsageNow


@endpoint(bp, "/tasks/{task_id}/usage", methods=["POST"], body=UsageReport, response=UsageRecorded, status=201,
          summary="Report what a job used (tokens, cost, model, wall time); agents under their live claim")
def report_usage(task_id):
    request = parse_body(bp.current_request.raw_body, UsageReport)
    return 201, get_services().usage.report(principal(), task_id, request)


@endpoint(bp, "/runs/{run_id}/usage", response=RunUsage,
          summary="A run's usage by stage, role, agent and model, and its budget (one read)")
def run_usage(run_id):
    query(bp, set())
    return 200, get_services().usage.of_run(principal(), run_id)
