"""Handoffs: write one on a task, list a task's (newest first), read one, move it along its lifecycle."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.handoffs import Handoff, HandoffAction, HandoffCreate, HandoffNote
from .http import endpoint, page_body, parse_body, principal
from .query import paging

bp = Blueprint(__name__)


@endpoint(bp, "/tasks/{task_id}/handoffs", methods=["POST"], body=HandoffCreate, response=Handoff, status=201,
          summary="Write a handoff for the next agent")
def create_handoff(task_id):
    request = parse_body(bp.current_request.raw_body, HandoffCreate)
    return 201, get_services().handoffs.create(principal(), task_id, request)


@endpoint(bp, "/tasks/{task_id}/handoffs", response=Handoff, lists=True, query=("limit", "cursor"),
          summary="Handoffs of a task, newest first")
def list_handoffs(task_id):
    _, limit, cursor = paging(bp)
    return 200, page_body(get_services().handoffs.list(principal(), task_id, limit, cursor))


@endpoint(bp, "/handoffs/{handoff_id}", response=Handoff, summary="Get a handoff")
def get_handoff(handoff_id):
    return 200, get_services().handoffs.get(principal(), handoff_id)


def _transition(handoff_id: str, action: HandoffAction):
    note = parse_body(bp.current_request.raw_body, HandoffNote)
    return 200, get_services().handoffs.transition(principal(), handoff_id, action, note)


@endpoint(bp, "/handoffs/{handoff_id}/accept", methods=["POST"], body=HandoffNote, response=Handoff,
          summary="Accept a handoff (created → accepted)")
def accept_handoff(handoff_id):
    return _transition(handoff_id, HandoffAction.accept)


@endpoint(bp, "/handoffs/{handoff_id}/complete", methods=["POST"], body=HandoffNote, response=Handoff,
          summary="Complete a handoff (accepted → completed)")
def complete_handoff(handoff_id):
    return _transition(handoff_id, HandoffAction.complete)


@endpoint(bp, "/handoffs/{handoff_id}/fail", methods=["POST"], body=HandoffNote, response=Handoff,
          summary="Fail a handoff (created or accepted → failed)")
def fail_handoff(handoff_id):
    return _transition(handoff_id, HandoffAction.fail)
