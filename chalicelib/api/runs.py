"""Runs: start, list, read, progress, kill, tasks of a run, audit events."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.entities import Event, Progress, Run, Task
from ..domain.enums import Stage, TaskStatus
from ..domain.requests import RollbackRequest, RunCreate, TaskCreate
from ..adapters.pagination import parse_limit
from .http import endpoint, page_body, parse_body, principal
from .query import enum_param, paging, query

bp = Blueprint(__name__)


@endpoint(bp, "/projects/{project_id}/runs", methods=["POST"], body=RunCreate, response=Run, status=201,
          summary="Start a run of tasks")
def start_run(project_id):
    request = parse_body(bp.current_request.raw_body, RunCreate)
    return 201, get_services().runs.start(principal(), project_id, request)


@endpoint(bp, "/projects/{project_id}/runs", response=Run, lists=True, query=("limit", "cursor"),
          summary="Runs of a project, newest first")
def list_runs(project_id):
    _, limit, cursor = paging(bp)
    return 200, page_body(get_services().runs.list(principal(), project_id, limit, cursor))


@endpoint(bp, "/runs/{run_id}", response=Run, summary="Get a run with its progress")
def get_run(run_id):
    return 200, get_services().runs.get(principal(), run_id)


@endpoint(bp, "/runs/{run_id}/progress", response=Progress, summary="Progress of a run (one read)")
def run_progress(run_id):
    return 200, get_services().runs.progress(principal(), run_id)


@endpoint(bp, "/runs/{run_id}", methods=["DELETE"], response=Run, summary="Kill a run (soft: tasks cancelled)")
def kill_run(run_id):
    return 200, get_services().runs.kill(principal(), run_id)


@endpoint(bp, "/runs/{run_id}/tasks", response=Task, lists=True, query=("stage", "status", "limit", "cursor"),
          summary="Tasks of a run")
def list_run_tasks(run_id):
    params, limit, cursor = paging(bp, {"stage", "status"})
    stage = enum_param(params, "stage", {s.value for s in Stage})
    status = enum_param(params, "status", {s.value for s in TaskStatus})
    return 200, page_body(get_services().runs.list_tasks(principal(), run_id, limit, cursor, stage, status))


@endpoint(bp, "/runs/{run_id}/tasks", methods=["POST"], body=TaskCreate, response=Task, status=201,
          summary="Add a task to a run")
def add_run_task(run_id):
    request = parse_body(bp.current_request.raw_body, TaskCreate)
    return 201, get_services().runs.add_task(principal(), run_id, request)


@endpoint(bp, "/runs/{run_id}/events", response=Event, lists=True, query=("after", "limit"),
          summary="The run's audit events in order")
def list_run_events(run_id):
    from ..services.runs import parse_after  # here, not at import: the runs service loads on first use

    params = query(bp, {"after"})
    limit = parse_limit(params.get("limit"))
    events = get_services().runs.events(principal(), run_id, parse_after(params.get("after")), limit)
    # Events are read with after=<seq>; next_cursor is the seq to pass as after for the next page.
    next_cursor = str(events[-1].seq) if len(events) == limit else None
    return 200, {"items": events, "next_cursor": next_cursor}


@endpoint(bp, "/runs/{run_id}/rollback", methods=["POST"], body=RollbackRequest, response=Task, status=201,
          summary="Roll back a run's release: a rollback task for the cicd role (humans only)")
def rollback_run(run_id):
    request = parse_body(bp.current_request.raw_body, RollbackRequest)
    return 201, get_services().runs.rollback(principal(), run_id, request.reason)
