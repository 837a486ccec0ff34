"""Task state: PUT/GET/DELETE /tasks/{task_id}/state/{name}, GET /tasks/{task_id}/state, and the
upload of large values (POST .../upload, POST .../confirm). A name with '/' is sent as %2F."""

from urllib.parse import unquote

from chalice import Blueprint

from ..adapters.pagination import parse_limit
from ..bootstrap import get_services
from ..domain.state import StateConfirm, StateMeta, StatePut, StateUploadAnswer, StateUploadRequest, StateValue
from .http import endpoint, page_body, parse_body, principal
from .query import query

bp = Blueprint(__name__)


def version_param(raw):
    from ..domain.errors import InvalidInputError

    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise InvalidInputError("expected_version must be a whole number >= 0", code="invalid_version")
    return int(raw)


@endpoint(bp, "/tasks/{task_id}/state", response=StateMeta, lists=True, query=("prefix", "limit", "cursor"),
          summary="The task's state names and versions (no values)")
def list_state(task_id):
    params = query(bp, {"prefix", "cursor"})
    page = get_services().state.list(principal(), task_id, params.get("prefix") or "", parse_limit(params.get("limit")),
                                     params.get("cursor"))
    return 200, page_body(page)


@endpoint(bp, "/tasks/{task_id}/state/{name}", methods=["PUT"], body=StatePut, response=StateMeta,
          summary="Write a state value (a new version; expected_version makes it optimistic)")
def put_state(task_id, name):
    request = parse_body(bp.current_request.raw_body, StatePut)
    return 200, get_services().state.put(principal(), task_id, unquote(name), request)


@endpoint(bp, "/tasks/{task_id}/state/{name}", response=StateValue,
          summary="Read a state value (inline, or a download_url for a large one)")
def get_state(task_id, name):
    query(bp, set())
    return 200, get_services().state.get(principal(), task_id, unquote(name))


@endpoint(bp, "/tasks/{task_id}/state/{name}", methods=["DELETE"], response=StateMeta, query=("expected_version",),
          summary="Delete a state value (its history stays)")
def delete_state(task_id, name):
    params = query(bp, {"expected_version"})
    return 200, get_services().state.delete(principal(), task_id, unquote(name),
                                            version_param(params.get("expected_version")))


@endpoint(bp, "/tasks/{task_id}/state/{name}/upload", methods=["POST"], body=StateUploadRequest,
          response=StateUploadAnswer, status=201, summary="Ask for a presigned upload of a large value (to 100 MB)")
def upload_state(task_id, name):
    request = parse_body(bp.current_request.raw_body, StateUploadRequest)
    return 201, get_services().state.upload(principal(), task_id, unquote(name), request)


@endpoint(bp, "/tasks/{task_id}/state/{name}/confirm", methods=["POST"], body=StateConfirm, response=StateMeta,
          summary="Make an uploaded value the new version (its size and sha256 are checked)")
def confirm_state(task_id, name):
    parse_body(bp.current_request.raw_body or b"{}", StateConfirm)
    return 200, get_services().state.confirm(principal(), task_id, unquote(name))
