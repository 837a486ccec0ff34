"""HTTP middleware: body size limit and bearer-key authentication on every route but the public
ones. Being middleware (not a Chalice authorizer), it behaves the same under Lambda,
``chalice local`` and ``chalice.test.Client``."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Optional

from chalice import Response
from chalice.app import Request

from ..bootstrap import get_services
from ..domain.auth import Principal
from ..domain.errors import BatonError, PayloadTooLargeError
from ..domain.enums import PrincipalKind
from .http import MAX_BODY_BYTES, current_principal, error_response, internal_error_response
from .idempotency import with_idempotency

logger = logging.getLogger("baton.api")

# The dashboard (GET /ui and its assets) is public too: the page asks for a key, and every data call carries it.
PUBLIC_PATHS = frozenset({"/status", "/openapi.json", "/ui", "/ui/{asset}"})


def authenticate_request(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Authenticate, then log one structured line per request (never the key or the body)."""
    from ..observability import logger as structured

    began = time.monotonic()
    structured.thread_safe_clear_keys()
    response = in_contract_shape(_authenticate_request(event, get_response))

    ids = {k: v for k, v in (event.uri_params or {}).items() if k in LOGGED_IDS}
    structured.info("request", extra={"method": event.method, "route": event.path, "status": response.status_code,
                                      "duration_ms": round((time.monotonic() - began) * 1000, 1), **ids})
    return response


CHALICE_CODES = {"MethodNotAllowedError": "method_not_allowed", "UnsupportedMediaType": "unsupported_media_type",
                 "BadRequestError": "invalid_input", "NotFoundError": "not_found", "TooManyRequestsError": "throttled"}


def in_contract_shape(response: Response) -> Response:
    """Chalice answers some requests itself (unsupported method 405, content type 415) with its own
    ``{"Code", "Message"}`` body; rewrite those into the contract's error shape."""
    body = response.body
    if response.status_code < 400 or not isinstance(body, dict) or set(body) != {"Code", "Message"}:
        return response
    code = CHALICE_CODES.get(str(body["Code"]), "error")
    message = str(body["Message"])
    if response.status_code == 415:
        message = "send the body as JSON with 'Content-Type: application/json'"
    return Response(body=json.dumps({"error": {"code": code, "message": message, "details": []}}),
                    status_code=response.status_code,
                    headers={**(response.headers or {}), "Content-Type": "application/json"})


LOGGED_IDS = frozenset({"project_id", "run_id", "task_id", "proof_id", "handoff_id"})


def _authenticate_request(event: Request, get_response: Callable[[Request], Response]) -> Response:
    token = current_principal.set(None)
    try:
        body = event.raw_body
        if body and len(body) > MAX_BODY_BYTES:
            raise PayloadTooLargeError(f"the body is {len(body)} bytes; the limit is {MAX_BODY_BYTES} bytes",
                                       code="body_too_large")
        if event.path not in PUBLIC_PATHS:
            principal = with_claim(get_services().keys.authenticate(event.headers.get("authorization")),
                                   event.headers.get("baton-claim"))
            current_principal.set(principal)
            _append_log_keys(key_id=principal.key_id, principal=principal.kind.value)
            if principal.launch_code:
                return get_response(event)   # its answer is a credential: never kept by the idempotency layer
            settings = get_services().settings
            return with_idempotency(settings.idempotency_table, principal.key_id, event, get_response)
        return get_response(event)
    except BatonError as error:
        return error_response(error)
    except Exception:
        logger.exception("unhandled error before the route ran")
        return internal_error_response()
    finally:
        current_principal.reset(token)


def with_claim(principal: Principal, header: Optional[str]) -> Principal:
    """An agent key names the claim it works under with ``Baton-Claim: <claim_id>``; a job token's
    claim is bound into the token and cannot be changed by a header."""
    if header and principal.kind == PrincipalKind.agent and principal.task_id is None:
        return principal.model_copy(update={"claim_id": header.strip()[:64]})
    return principal


def _append_log_keys(**keys: Any) -> None:
    from ..observability import logger as structured

    structured.thread_safe_append_keys(**keys)
