"""Query-string parsing: every parameter is checked, unknown ones are rejected."""

from __future__ import annotations

from typing import Optional

from chalice import Blueprint

from ..adapters.pagination import parse_limit
from ..domain.errors import InvalidInputError


def query(bp: Blueprint, allowed: set[str]) -> dict[str, str]:
    params = dict(bp.current_request.query_params or {})
    unknown = sorted(set(params) - allowed - {"limit", "cursor"})
    if unknown:
        raise InvalidInputError(f"unknown query parameter(s): {', '.join(unknown)}", code="invalid_query",
                                details=[{"loc": ["query", name], "msg": "unknown parameter"} for name in unknown])
    return params


def paging(bp: Blueprint, allowed: Optional[set[str]] = None) -> tuple[dict[str, str], int, Optional[str]]:
    params = query(bp, allowed or set())
    return params, parse_limit(params.get("limit")), params.get("cursor")


def enum_param(params: dict[str, str], name: str, values: set[str]) -> Optional[str]:
    value = params.get(name)
    if value is None:
        return None
    if value not in values:
        raise InvalidInputError(f"{name} must be one of {', '.join(sorted(values))}", code="invalid_query")
    return value
