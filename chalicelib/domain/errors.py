"""Domain errors. Each names what went wrong and what the caller can do about it.

The API layer maps each class to one HTTP status; the domain never speaks HTTP.
"""

from __future__ import annotations

from typing import Any


class BatonError(Exception):
    """Base class: a failure the caller can understand and act on."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, details: list[Any] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or []


class InvalidInputError(BatonError):
    """The request is malformed: wrong type, missing or unknown field, bad id."""

    code = "invalid_input"


class UnauthenticatedError(BatonError):
    """No credentials, or credentials that do not identify anyone."""

    code = "unauthenticated"


class ForbiddenError(BatonError):
    """The caller is known but lacks the right for this action."""

    code = "forbidden"


class NotFoundError(BatonError):
    """The thing does not exist, or the caller may not know that it exists."""

    code = "not_found"


class ConflictError(BatonError):
    """The thing is in the wrong state for this action: lost race, stale version, lease not held."""

    code = "conflict"


class PayloadTooLargeError(BatonError):
    """The request body exceeds the limit."""

    code = "payload_too_large"


class RuleViolationError(BatonError):
    """The request is well-formed but breaks a business rule (e.g. a missing required proof)."""

    code = "rule_violation"
