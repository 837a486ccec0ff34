"""Query-string parsing: every parameter is checked, unknown ones are rejected."""

from __future__ import annotations

from typing import Optional

from chalice import Blueprint

from ..adapters.pagination import parse_limit
from ..domain.errors import InvalidInputError
from .http import query_checked, unknown_query_error


def query(bp: Blueprint, allowed: set[str]) -> dict[str, str]:
    """The query parameters, when each is ``limit`` or one of ``allowed``; else a 400.

    ``cursor`` is allowed only where a route says so (``paging`` does): a list that pages by
    something else (events page with ``after``) must not silently ignore a cursor and serve its
    first page again. Calling this tells ``endpoint`` that the route checked its parameters.
    """
    params = dict(bp.current_request.query_params or {})
    query_checked.set(True)
    unknown = sorted(set(params) - allowed - {"limit"})
    if unknown:
        raise unknown_query_error(unknown)
    if "limit" in params:
        parse_limit(params["limit"])   # a bad limit is a 400 even where the list is not paged
    return params


def paging(bp: Blueprint, allowed: Optional[set[str]] = None) -> tuple[dict[str, str], int, Optional[str]]:
    params = query(bp, (allowed or set()) | {"cursor"})
    return params, parse_limit(params.get("limit")), params.get("cursor")


def enum_param(params: dict[str, str], name: str, values: set[str]) -> Optional[str]:
    value = params.get(name)
    if value is None:
        return None
    if value not in values:
        raise InvalidInputError(f"{name} must be one of {', '.join(sorted(values))}", code="invalid_query")
    return value
