"""Entry points of the non-HTTP Lambda functions: the SQS dispatcher and the scheduled sweeper."""

from __future__ import annotations

from typing import Any


def dispatch_batch(event: Any) -> dict[str, Any]:
    raise NotImplementedError("being written")


def sweep_once() -> dict[str, Any]:
    raise NotImplementedError("being written")
