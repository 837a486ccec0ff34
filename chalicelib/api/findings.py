"""Findings and bug reports: a tool's report becomes fix tasks; a bug becomes a bug_report task."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.bugs import BugReport
from ..domain.findings.reports import FindingsReport, FindingsResult
from ..domain.entities import Task
from .http import endpoint, parse_body, principal

bp = Blueprint(__name__)


@endpoint(bp, "/tasks/{task_id}/findings", methods=["POST"], body=FindingsReport, response=FindingsResult,
          status=201, summary="Report findings (SARIF, bandit, security_report, bugs): fix tasks and a verdict")
def report_findings(task_id):
    request = parse_body(bp.current_request.raw_body, FindingsReport)
    return 201, get_services().fix_tasks.report(principal(), task_id, request)


@endpoint(bp, "/projects/{project_id}/bugs", methods=["POST"], body=BugReport, response=Task, status=201,
          summary="Report a bug: a bug_report task in the run or the project's backlog")
def report_bug(project_id):
    request = parse_body(bp.current_request.raw_body, BugReport)
    return 201, get_services().bugs.report(principal(), project_id, request)
