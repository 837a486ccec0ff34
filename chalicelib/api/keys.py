"""API keys: POST/GET /keys, DELETE /keys/{key_id} (admin only)."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.entities import ApiKey
from ..domain.requests import KeyCreate


class IssuedKey(ApiKey):
    key: str
from .http import endpoint, page_body, parse_body, principal
from .query import paging

bp = Blueprint(__name__)


@endpoint(bp, "/keys", methods=["POST"], body=KeyCreate, response=IssuedKey, status=201,
          summary="Issue an API key (shown once; admin only)")
def create_key():
    """Issue a key; the answer is the only place its material ever appears.

    With an ``Idempotency-Key``, the idempotency table keeps this answer without the key (see
    ``api.idempotency``): a repeat is a 409 ``secret_shown_once`` naming the key that was issued
    (revoke it if its material was lost), never a second key and never a copy without the key."""
    request = parse_body(bp.current_request.raw_body, KeyCreate)
    api_key, key = get_services().keys.create(principal(), request)
    return 201, {**api_key.model_dump(mode="json", exclude={"revoked_at"}), "key": key}


@endpoint(bp, "/keys", response=ApiKey, lists=True, query=("limit", "cursor"), summary="List API keys (admin only)")
def list_keys():
    _, limit, cursor = paging(bp)
    return 200, page_body(get_services().keys.list(principal(), limit, cursor))


@endpoint(bp, "/keys/{key_id}", methods=["DELETE"], response=ApiKey, summary="Revoke an API key at once (admin only)")
def revoke_key(key_id):
    return 200, get_services().keys.revoke(principal(), key_id)
