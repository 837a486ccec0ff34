"""Opaque list cursors: base64url JSON of DynamoDB's LastEvaluatedKey, checked on the way back in.

A cursor is accepted only for the list it came from (its partition must match), so a forged or
foreign cursor is a 400, never a DynamoDB ValidationException; so is one that is not base64url
JSON of an object of short strings (nested past what the json module parses, a lone surrogate).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Optional

from ..domain.errors import InvalidInputError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode_cursor(last_key: Optional[dict[str, Any]]) -> Optional[str]:
    if not last_key:
        return None
    raw = json.dumps(last_key, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: Optional[str], *, expected: dict[str, str],
                  names: frozenset[str]) -> Optional[dict[str, str]]:
    """Decode ``cursor``: it must carry exactly the key attributes ``names``, and ``expected`` maps
    those that must hold fixed values (the partition being listed)."""
    if cursor is None or cursor == "":
        return None
    bad = InvalidInputError("cursor is not valid for this list; pass the next_cursor of the previous page",
                            code="invalid_cursor")
    if len(cursor) > 2048:
        raise bad
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):   # nested past what json parses
        raise bad from None
    if not isinstance(value, dict) or set(value) != set(names):
        raise bad
    if not all(isinstance(v, str) and 0 < len(v) <= 1024 and _is_text(v) for v in value.values()):
        raise bad
    for name, required in expected.items():
        if value.get(name) != required:
            raise bad
    return value


def _is_text(value: str) -> bool:
    """Whether ``value`` can go to DynamoDB: JSON's ``\\ud800`` escape decodes to a lone surrogate,
    which no UTF-8 encoder accepts."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_limit(raw: Optional[str]) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    # ASCII digits only, and short: str.isdigit() also accepts "²" (int() then raises) and "５",
    # and int() refuses strings of more than 4300 digits.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 3 or not (1 <= int(raw) <= MAX_LIMIT):
        raise InvalidInputError(f"limit must be a whole number from 1 to {MAX_LIMIT}", code="invalid_limit")
    return int(raw)
