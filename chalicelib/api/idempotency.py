"""``Idempotency-Key`` on mutating POSTs, with powertools idempotency on its own table.

A repeat with the same key and the same body returns the first response (status, body, headers)
without running the route again; the same key with another body is a 409; a duplicate that
arrives while the first is still running is a 409 with ``Retry-After``. Keys are scoped to the
caller's API key and the path, so two clients cannot collide. Server errors are not remembered
(the request may be retried with the same key).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Callable, Optional

from chalice import Response

from ..domain.errors import ConflictError, InvalidInputError
from .http import error_response

HEADER = "idempotency-key"
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
EXPIRES_AFTER_SECONDS = 24 * 3600


class _ServerError(Exception):
    def __init__(self, response: Response):
        super().__init__("server error: not remembered")
        self.response = response


_layer: dict[str, Any] = {}


def _persistence(table: str) -> tuple[Any, Any]:
    if table not in _layer:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

        config = IdempotencyConfig(event_key_jmespath="key", payload_validation_jmespath="body_sha256",
                                   raise_on_no_idempotency_key=True, expires_after_seconds=EXPIRES_AFTER_SECONDS)
        _layer[table] = (DynamoDBPersistenceLayer(table_name=table), config)
    return _layer[table]


def reset() -> None:
    """Forget the persistence layers (tests point boto3 at a new moto)."""
    _layer.clear()


def with_idempotency(table: str, scope: str, event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Run ``get_response`` at most once per (caller, path, Idempotency-Key)."""
    raw_key: Optional[str] = event.headers.get(HEADER)
    if raw_key is None or event.method.upper() != "POST" or not table:
        return get_response(event)
    if not KEY_RE.match(raw_key):
        return error_response(InvalidInputError(
            "Idempotency-Key must be 8 to 128 letters, digits, '-' or '_' (a UUID is ideal)",
            code="invalid_idempotency_key"))
    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (IdempotencyAlreadyInProgressError,
                                                                        IdempotencyValidationError)

    persistence, config = _persistence(table)
    context = getattr(event, "lambda_context", None)
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        config.register_lambda_context(context)
    body = event.raw_body or b""

    @idempotent_function(data_keyword_argument="request", persistence_store=persistence, config=config)
    def run_once(request: dict[str, Any]) -> dict[str, Any]:
        response = get_response(event)
        if response.status_code >= 500:
            raise _ServerError(response)
        return {"status": response.status_code, "body": response.body if isinstance(response.body, str) else "",
                "headers": dict(response.headers or {})}

    try:
        target = event.path + "".join(f"#{k}={v}" for k, v in sorted((event.uri_params or {}).items()))
        saved = run_once(request={"key": f"{scope}#{target}#{raw_key}",
                                  "body_sha256": hashlib.sha256(body if isinstance(body, bytes) else body.encode())
                                  .hexdigest()})
    except _ServerError as failed:
        return failed.response
    except IdempotencyValidationError:
        return error_response(ConflictError(
            "this Idempotency-Key was already used with a different body; use a new key for a new request",
            code="idempotency_key_reused"))
    except IdempotencyAlreadyInProgressError:
        return error_response(ConflictError("a request with this Idempotency-Key is still being processed; "
                                            "retry after a second", code="request_in_progress"),
                              headers={"Retry-After": "1"})
    return Response(body=saved["body"], status_code=int(saved["status"]), headers=saved.get("headers", {}))
