"""Projects: POST/GET /projects, GET/PATCH /projects/{project_id}."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.entities import Project
from ..domain.requests import ProjectCreate, ProjectPatch
from .http import endpoint, page_body, parse_body, principal
from .query import paging

bp = Blueprint(__name__)


@endpoint(bp, "/projects", methods=["POST"], body=ProjectCreate, response=Project, status=201,
          summary="Create a project")
def create_project():
    request = parse_body(bp.current_request.raw_body, ProjectCreate)
    return 201, get_services().projects.create(principal(), request)


@endpoint(bp, "/projects", response=Project, lists=True, query=("limit", "cursor"), summary="List projects")
def list_projects():
    _, limit, cursor = paging(bp)
    return 200, page_body(get_services().projects.list(principal(), limit, cursor))


@endpoint(bp, "/projects/{project_id}", response=Project, summary="Get a project")
def get_project(project_id):
    return 200, get_services().projects.get(principal(), project_id)


@endpoint(bp, "/projects/{project_id}", methods=["PATCH"], body=ProjectPatch, response=Project,
          summary="Change a project")
def patch_project(project_id):
    request = parse_body(bp.current_request.raw_body, ProjectPatch)
    return 200, get_services().projects.patch(principal(), project_id, request)
