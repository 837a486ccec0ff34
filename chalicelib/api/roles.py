"""Role configs: GET /roles, GET/PUT /roles/{role}, GET /roles/{role}/versions."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.roles import RoleConfig, RoleSpec
from .http import endpoint, parse_body, principal
from .query import query

bp = Blueprint(__name__)


@endpoint(bp, "/roles", response=RoleConfig, lists=True, summary="Active role configs")
def list_roles():
    query(bp, set())
    return 200, {"items": get_services().roles.list(principal()), "next_cursor": None}


@endpoint(bp, "/roles/{role}", response=RoleConfig, summary="Active config of a role")
def get_role(role):
    return 200, get_services().roles.get(principal(), role)


@endpoint(bp, "/roles/{role}", methods=["PUT"], body=RoleSpec, response=RoleConfig,
          summary="Publish a new version of a role (admin only)")
def put_role(role):
    spec = parse_body(bp.current_request.raw_body, RoleSpec)
    return 200, get_services().roles.put(principal(), role, spec)


@endpoint(bp, "/roles/{role}/versions", response=RoleConfig, lists=True, summary="All versions of a role")
def list_role_versions(role):
    query(bp, set())
    return 200, {"items": get_services().roles.versions(principal(), role), "next_cursor": None}
