"""``Idempotency-Key`` on mutating POSTs, with powertools idempotency on its own table.

A repeat with the same key and the same body returns the first response (status, body, headers)
without running the route again; the same key with another body is a 409; a duplicate that
arrives while the first is still running is a 409 with ``Retry-After``. Keys are scoped to the
caller's API key and the path, so two clients cannot collide. Server errors are not remembered
(the request may be retried with the same key).

Secrets are never stored
------------------------
Some answers carry a secret that is shown once: ``POST /keys`` (the new API key),
``POST /jobs/{job_id}/token`` (a job token) and ``POST /projects/{project_id}/webhooks`` (the
webhook's signing secret), and any answer holding a string shaped like a Baton
key, token or launch code (``bt_``/``bl_`` + 43 characters). The table keeps such an answer with
the secrets replaced by null, never in clear. The first request gets its answer, secret
included. A repeat with the same key and body does not get a copy without the secret (a client
could take that for the key, or keep a null as one): it is a 409 ``secret_shown_once`` that says
the request was done, names what was created (the stored answer, secrets nulled, is in
``details``) and what to do if the secret was lost (revoke that key and issue a new one).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable, Optional

from chalice import Response

from ..domain.errors import ConflictError, InvalidInputError
from .http import error_response

HEADER = "idempotency-key"
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
EXPIRES_AFTER_SECONDS = 24 * 3600

# (method, route) -> the top-level field of its answer that holds a secret shown once.
SECRET_FIELDS: dict[tuple[str, str], str] = {("POST", "/keys"): "key", ("POST", "/jobs/{job_id}/token"): "token",
                                             ("POST", "/projects/{project_id}/webhooks"): "secret"}
# Anything shaped like a Baton API key, job token or launch code, wherever it appears in an answer.
SECRET_RE = re.compile(r"(?<![A-Za-z0-9_-])b[tl]_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


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


def redact(body: str, secret_field: Optional[str] = None) -> Optional[str]:
    """``body`` (JSON text) with every secret replaced by null, or None when it holds none.

    The secrets are ``secret_field`` of a JSON object body, and any string shaped like a Baton
    key, token or launch code; a body that is not JSON but holds such a string is replaced whole."""
    if not body or (secret_field is None and not SECRET_RE.search(body)):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return json.dumps(None) if SECRET_RE.search(body) else None
    found = False
    if secret_field and isinstance(value, dict) and isinstance(value.get(secret_field), str):
        value[secret_field] = None
        found = True
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            pairs: list[tuple[Any, Any]] = list(item.items())
        else:
            pairs = list(enumerate(item)) if isinstance(item, list) else []
        for name, child in pairs:
            if isinstance(child, str) and SECRET_RE.search(child):
                item[name] = None
                found = True
            elif isinstance(child, (dict, list)):
                stack.append(child)
    return json.dumps(value, separators=(",", ":")) if found else None


def _secret_shown_once(saved: dict[str, Any]) -> Response:
    first = json.loads(saved["body"]) if saved.get("body") else None
    created = first.get("id") if isinstance(first, dict) else None
    if isinstance(created, str) and created.startswith("key_"):
        lost = f"if you did not keep it, revoke {created} (DELETE /keys/{created}) and issue a new key"
    elif isinstance(created, str) and created.startswith("whk_"):
        lost = f"if you did not keep it, remove webhook {created} (DELETE /webhooks/{created}) and add it again"
    else:
        lost = "if you did not keep it, ask for a new one"
    return error_response(ConflictError(
        "a request with this Idempotency-Key was already done; its answer held a secret, which is shown only once and "
        f"is not kept: {lost}. The first answer, without the secret, is in details",
        code="secret_shown_once", details=[{"status": saved.get("status"), "first_response": first}]))


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
    secret_field = SECRET_FIELDS.get((event.method.upper(), event.path))
    fresh: list[Response] = []

    @idempotent_function(data_keyword_argument="request", persistence_store=persistence, config=config)
    def run_once(request: dict[str, Any]) -> dict[str, Any]:
        response = get_response(event)
        if response.status_code >= 500:
            raise _ServerError(response)
        text = response.body if isinstance(response.body, str) else ""
        redacted = redact(text, secret_field if response.status_code < 300 else None)
        fresh.append(response)          # this request ran: it gets its answer, secret included
        if redacted is None:
            return {"status": response.status_code, "body": text, "headers": dict(response.headers or {})}
        return {"status": response.status_code, "body": redacted, "headers": dict(response.headers or {}),
                "secret_redacted": True}  # nosec B105  # a flag saying the secret was removed, not a secret

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
    if saved.get("secret_redacted"):
        return fresh[0] if fresh else _secret_shown_once(saved)
    return Response(body=saved["body"], status_code=int(saved["status"]), headers=saved.get("headers", {}))
