"""Field types and the validators request bodies and entities share (ids, titles, branches,
repository URLs, free-form settings, PATCH bodies)."""

from __future__ import annotations

from decimal import Decimal
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .ids import PROJECT_ID_RE
from .repository_url import check_repository_url

ProjectId = Annotated[str, Field(pattern=PROJECT_ID_RE.pattern, description="slug [a-z0-9][a-z0-9-]{1,62}")]
Title = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(max_length=10_000)]
Priority = Annotated[int, Field(ge=0, le=10)]
Name = Annotated[str, Field(min_length=1, max_length=100)]

_BRANCH_RE = re.compile(r"^(?!/)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,255}(?<!/)$")

STRICT_INPUT = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=False)


def check_repository_url_field(value: str) -> str:
    """The stage-independent rules (domain.repository_url); whether a local repository is allowed
    depends on the stage, which the project service checks."""
    return check_repository_url(value, allow_local=True)


def check_branch(value: str) -> str:
    if not _BRANCH_RE.match(value):
        raise ValueError("primary_branch must be a git branch name (letters, digits, . _ - /)")
    return value


MAX_SETTINGS_DEPTH = 16
# What a DynamoDB number can hold: at most 38 significant digits, magnitude 1E-130 .. <1E+126.
_DYNAMO_MAX_INT = 10 ** 38
_DYNAMO_MIN_MAGNITUDE = Decimal("1E-130")
_DYNAMO_MAX_MAGNITUDE = Decimal("1E+126")


def _check_settings_value(value: Any, depth: int) -> None:
    """Reject what the store cannot keep as given: non-finite or out-of-range numbers (NaN would be
    stored as null, 1e200 fails the write) and nesting deeper than DynamoDB's limit allows."""
    if depth > MAX_SETTINGS_DEPTH:
        raise ValueError(f"settings may nest at most {MAX_SETTINGS_DEPTH} levels deep")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) >= _DYNAMO_MAX_INT:
            raise ValueError("numbers in settings may have at most 38 digits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers in settings must be finite (no NaN or Infinity)")
        magnitude = abs(Decimal(repr(value)))
        if magnitude and not (_DYNAMO_MIN_MAGNITUDE <= magnitude < _DYNAMO_MAX_MAGNITUDE):
            raise ValueError("numbers in settings must lie between 1E-130 and 1E+126 in magnitude")
        return
    if isinstance(value, dict):
        for item in value.values():
            _check_settings_value(item, depth + 1)
        return
    if isinstance(value, list):
        for item in value:
            _check_settings_value(item, depth + 1)
        return
    raise ValueError(f"settings may hold only JSON values, not {type(value).__name__}")


def check_settings(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > 50:
        raise ValueError("settings may hold at most 50 keys")
    for item in value.values():
        _check_settings_value(item, 1)
    return value


def check_patch(patch: BaseModel, when_empty: str) -> Any:
    """A PATCH body changes at least one field, and never sets one to null (omit it instead)."""
    if not patch.model_fields_set:
        raise ValueError(when_empty)
    for name in patch.model_fields_set:
        if getattr(patch, name) is None:
            raise ValueError(f"{name} cannot be null")
    return patch


SeverityName = Literal["critical", "high", "medium", "low"]
