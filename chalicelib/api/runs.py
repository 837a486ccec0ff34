"""Runs: start, list, read, progress, kill, tasks of a run, audit events."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.models import RunCreate, Stage, TaskCreate, TaskStatus
from ..services.runs import parse_after
from ..adapters.pagination import parse_limit
from .http import endpoint, page_body, parse_body, principal
from .query import enum_param, paging, query

bp = Blueprint(__name__)


@endpoint(bp, "/projects/{project_id}/runs", methods=["POST"])
def start_run(project_id):
    request = parse_body(bp.current_request.raw_body, RunCreate)
    return 201, get_services().runs.start(principal(), project_id, request)


@endpoint(bp, "/projects/{project_id}/runs")
def list_runs(project_id):
    _, limit, cursor = paging(bp)
    return 200, page_body(get_services().runs.list(principal(), project_id, limit, cursor))


@endpoint(bp, "/runs/{run_id}")
def get_run(run_id):
    return 200, get_services().runs.get(principal(), run_id)


@endpoint(bp, "/runs/{run_id}/progress")
def run_progress(run_id):
    return 200, get_services().runs.progress(principal(), run_id)


@endpoint(bp, "/runs/{run_id}", methods=["DELETE"])
def kill_run(run_id):
    return 200, get_services().runs.kill(principal(), run_id)


@endpoint(bp, "/runs/{run_id}/tasks")
def list_run_tasks(run_id):
    params, limit, cursor = paging(bp, {"stage", "status"})
    stage = enum_param(params, "stage", {s.value for s in Stage})
    status = enum_param(params, "status", {s.value for s in TaskStatus})
    return 200, page_body(get_services().runs.list_tasks(principal(), run_id, limit, cursor, stage, status))


@endpoint(bp, "/runs/{run_id}/tasks", methods=["POST"])
def add_run_task(run_id):
    request = parse_body(bp.current_request.raw_body, TaskCreate)
    return 201, get_services().runs.add_task(principal(), run_id, request)


@endpoint(bp, "/runs/{run_id}/events")
def list_run_events(run_id):
    params = query(bp, {"after"})
    limit = parse_limit(params.get("limit"))
    events = get_services().runs.events(principal(), run_id, parse_after(params.get("after")), limit)
    # Events are read with after=<seq>; next_cursor is the seq to pass as after for the next page.
    next_cursor = str(events[-1].seq) if len(events) == limit else None
    return 200, {"items": events, "next_cursor": next_cursor}
