"""Request parsing and response shaping shared by every route.

``endpoint`` registers a route on a blueprint and maps domain errors to the contract's error
body ``{"error": {"code", "message", "details"}}``. Chalice turns exceptions raised in a view into
responses before any middleware sees them, so the mapping has to wrap the view itself. It also
records the route's ``Operation`` for the OpenAPI document, which ``api.openapi`` builds only when
it is asked for (``GET /openapi.json``, ``make openapi``), so no import of the app loads it.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
import functools
import json
import logging
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from chalice import Blueprint, Response
from pydantic import BaseModel, ValidationError

from ..domain.auth import Principal
from ..domain.errors import (BatonError, ConflictError, ForbiddenError, InvalidInputError, NotFoundError,
                             PayloadTooLargeError, RuleViolationError, UnauthenticatedError)

if TYPE_CHECKING:
    from ..adapters.dynamodb import Page

logger = logging.getLogger("baton.api")

MAX_BODY_BYTES = 256 * 1024

_STATUS: list[tuple[type[BatonError], int]] = [
    (InvalidInputError, 400), (UnauthenticatedError, 401), (ForbiddenError, 403), (NotFoundError, 404),
    (ConflictError, 409), (PayloadTooLargeError, 413), (RuleViolationError, 422),
]

current_principal: contextvars.ContextVar[Optional[Principal]] = contextvars.ContextVar("principal", default=None)
# Set by api.query.query(): the route looked at its query parameters (and refused unknown ones).
query_checked: contextvars.ContextVar[bool] = contextvars.ContextVar("query_checked", default=False)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Operation:
    """A route as the OpenAPI document describes it: ``endpoint`` records one per method, and
    ``api.openapi`` builds the document from the records when it is asked for."""

    method: str
    path: str
    name: str
    summary: str
    body: Any = None
    response: Any = None
    status: int = 200
    query: tuple[str, ...] = ()
    lists: bool = False
    public: bool = False
    extra_statuses: tuple[int, ...] = ()


OPERATIONS: dict[tuple[str, str], Operation] = {}

M = TypeVar("M", bound=BaseModel)


def status_of(error: BatonError) -> int:
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 400


def error_response(error: BatonError, headers: Optional[dict[str, str]] = None) -> Response:
    body = {"error": {"code": error.code, "message": error.message, "details": error.details}}
    return json_response(status_of(error), body, headers)


def internal_error_response() -> Response:
    body = {"error": {"code": "internal_error", "details": [],
                      "message": "something went wrong on our side; the request may be retried"}}
    return json_response(500, body)


def json_response(status: int, body: Any, headers: Optional[dict[str, str]] = None) -> Response:
    return Response(body=json.dumps(body, separators=(",", ":")), status_code=status,
                    headers={"Content-Type": "application/json", "X-Content-Type-Options": "nosniff", **(headers or {})})


def dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    return value


def page_body(page: Page) -> dict[str, Any]:
    return {"items": dump(page.items), "next_cursor": page.next_cursor}


def principal() -> Principal:
    value = current_principal.get()
    if value is None:  # pragma: no cover - the middleware sets it on every authenticated route
        raise UnauthenticatedError("missing credentials")
    return value


def _pydantic_details(error: ValidationError) -> list[dict[str, Any]]:
    details = []
    for item in error.errors(include_url=False, include_input=False):
        details.append({"loc": [str(p) for p in item.get("loc", ())], "msg": item.get("msg", ""),
                        "type": item.get("type", "")})
    return details


def parse_body(raw: Optional[bytes], model: type[M]) -> M:
    """Validate a JSON body against ``model``: unknown fields, wrong types and bad JSON are 400s."""
    if raw is None or raw == b"" or raw == "":
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        details = _pydantic_details(error)
        if any(d["type"] == "json_invalid" for d in details):
            raise InvalidInputError("the body is not valid JSON", code="invalid_json", details=details) from None
        fields = ", ".join(sorted({".".join(d["loc"]) or "body" for d in details}))
        raise InvalidInputError(f"the body is not valid: check {fields}", code="invalid_body",
                                details=details) from None


def unknown_query_error(names: list[str]) -> InvalidInputError:
    return InvalidInputError(f"unknown query parameter(s): {', '.join(names)}", code="invalid_query",
                             details=[{"loc": ["query", name], "msg": "unknown parameter"} for name in names])


def endpoint(blueprint: Blueprint, path: str, methods: Optional[list[str]] = None, *,
             summary: str = "", body: Any = None, response: Any = None, status: int = 200,
             query: tuple[str, ...] = (), lists: bool = False, public: bool = False,
             extra_statuses: tuple[int, ...] = ()) -> Callable:
    """Register ``path`` on ``blueprint``; the view returns a Response, or a (status, body) pair.

    The keyword arguments describe the operation for the OpenAPI document (``api.openapi``):
    the request ``body`` model, the ``response`` model (``lists=True`` wraps it in a list page),
    the success ``status`` and the ``query`` parameters it reads.

    Query parameters are refused unless the view reads them through ``api.query`` (which refuses
    the ones it does not know): a route that changes state takes none but those it declares in
    ``query`` (``DELETE /tasks/{id}/state/{name}?expected_version=``), and is refused before it
    runs (``DELETE /runs/{id}?dry_run=true`` must not kill the run); a reading route that never
    looked at its parameters answers 400 instead of its result.
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(**kwargs: Any) -> Response:
            request = blueprint.current_request
            params = sorted((request.query_params or {}) if request is not None else {})
            safe = request is None or request.method.upper() in SAFE_METHODS
            checked = query_checked.set(False)
            try:
                if params and not safe and not set(params) <= set(query):
                    raise unknown_query_error(params)   # a write takes only the parameters it declares
                result = view(**kwargs)
                if params and not query_checked.get():
                    raise unknown_query_error(params)
            except BatonError as error:
                return error_response(error)
            except Exception:  # a bug of ours, never the client's input: log it, answer in our shape
                logger.exception("unhandled error in %s %s", methods or ["GET"], path)
                return internal_error_response()
            finally:
                query_checked.reset(checked)
            if isinstance(result, Response):
                return result
            status, body = result
            if status == 204:
                return Response(body="", status_code=204)
            return json_response(status, dump(body))

        blueprint.route(path, methods=methods or ["GET"], content_types=["application/json"])(wrapped)
        for method in methods or ["GET"]:
            OPERATIONS[(method.upper(), path)] = Operation(
                method=method, path=path, name=view.__name__,
                summary=summary or (view.__doc__ or view.__name__).strip().splitlines()[0], body=body,
                response=response, status=status, query=query, lists=lists, public=public,
                extra_statuses=extra_statuses)
        return view

    return decorate
