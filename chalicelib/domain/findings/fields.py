"""Reading a tool's report safely: typed access to its fields with errors that say where, and the
normal forms of paths, rules and lines (shared by every parser)."""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from ..errors import InvalidInputError, PayloadTooLargeError

MAX_FINDINGS = 10_000
MAX_TITLE = 300
MAX_TEXT = 4000


def scalar(value: Any) -> str:
    """A fingerprint's value as text: strings and numbers as written, anything else (a tool's
    nested object, which SARIF does not allow) as a mark rather than its whole text."""
    if isinstance(value, str):
        return value[:1000]
    if isinstance(value, (bool, int, float)) or value is None:
        return json.dumps(value)[:1000]
    return "<" + type(value).__name__ + ">"


def message_text(value: Any) -> str:
    if isinstance(value, dict):
        return text_of(value.get("text")) or text_of(value.get("markdown"))
    return ""


def invalid(loc: list[str], message: str) -> InvalidInputError:
    return InvalidInputError(f"the report is not valid at {'.'.join(loc)}: {message}", code="invalid_report",
                             details=[{"loc": loc, "msg": message}])


def list_at(container: dict[str, Any], key: str, where: list[str]) -> list[Any]:
    value = container.get(key)
    if not isinstance(value, list):
        raise invalid(where + [key], "must be a list")
    return value


def optional_list_at(container: dict[str, Any], key: str, where: list[str]) -> list[Any]:
    """``container[key]`` when it is a list; absent or null is an empty list; anything else is invalid."""
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(where + [key], "must be a list")
    return value


def dict_at(value: Any, where: list[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(where, "must be an object")
    return value


def text_of(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def number_of(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if 0.0 <= number <= 10.0 else None


def is_line(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000_000


def first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def normal_path(path: str) -> str:
    path = re.sub(r"^file://", "", path.strip())
    while path.startswith("./"):
        path = path[2:]
    return path


def normal_rule(rule: str) -> str:
    return " ".join(rule.lower().split())


def check_count(count: int) -> None:
    if count > MAX_FINDINGS:
        raise PayloadTooLargeError(f"the report has more than {MAX_FINDINGS} findings; split it into smaller "
                                   "reports", code="too_many_findings")
