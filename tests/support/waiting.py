"""Polling with a deadline, for tests that wait on threads or processes."""

from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(check: Callable[[], Any], what: str, deadline_seconds: float) -> Any:
    """Poll ``check`` until it returns something truthy (returned), or fail after the deadline.
    The deadline is generous: it bounds a hang, it never decides an outcome."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)
