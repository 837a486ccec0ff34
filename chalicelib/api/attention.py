"""What waits for a person: GET /attention, POST /attention/{id}/resolve."""

from chalice import Blueprint

from ..adapters.pagination import parse_limit
from ..bootstrap import get_services
from ..domain.entities import AttentionItem
from ..domain.requests import ResolveRequest
from .http import endpoint, page_body, parse_body, principal
from .query import query

bp = Blueprint(__name__)


@endpoint(bp, "/attention", response=AttentionItem, lists=True, query=("project_id", "status", "limit", "cursor"),
          summary="What waits for a person across projects (gates, budgets, escalations, stuck tasks), newest first")
def list_attention():
    params = query(bp, {"project_id", "status", "limit", "cursor"})
    page = get_services().attention.list(principal(), params.get("project_id") or None, params.get("status") or "open",
                                         parse_limit(params.get("limit")), params.get("cursor"))
    return 200, page_body(page)


@endpoint(bp, "/attention/{item_id}/resolve", methods=["POST"], body=ResolveRequest, response=AttentionItem,
          summary="Resolve an attention item (humans and admins)")
def resolve_attention(item_id):
    request = parse_body(bp.current_request.raw_body, ResolveRequest)
    return 200, get_services().attention.resolve(principal(), item_id, request.comment)
