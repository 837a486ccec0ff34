"""API keys: POST/GET /keys, DELETE /keys/{key_id} (admin only)."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.models import KeyCreate
from .http import endpoint, page_body, parse_body, principal
from .query import paging

bp = Blueprint(__name__)


@endpoint(bp, "/keys", methods=["POST"])
def create_key():
    request = parse_body(bp.current_request.raw_body, KeyCreate)
    api_key, key = get_services().keys.create(principal(), request)
    return 201, {**api_key.model_dump(mode="json", exclude={"revoked_at"}), "key": key}


@endpoint(bp, "/keys")
def list_keys():
    _, limit, cursor = paging(bp)
    return 200, page_body(get_services().keys.list(principal(), limit, cursor))


@endpoint(bp, "/keys/{key_id}", methods=["DELETE"])
def revoke_key(key_id):
    return 200, get_services().keys.revoke(principal(), key_id)
