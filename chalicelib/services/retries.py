"""One retry style for stale reads.

A use case reads what it needs, decides, and writes conditioned on what it read (a version, a
lease). When a concurrent writer got there first the write fails with ``stale_version``: the whole
read-decide-write is run again on a fresh read, a bounded number of times. Any other conflict (a
lost lease, a wrong state) is an answer, not a race, and propagates at once.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from ..domain.errors import ConflictError

T = TypeVar("T")

STALE_ATTEMPTS = 5


def on_fresh_read(work: Callable[[], T], attempts: int = STALE_ATTEMPTS) -> T:
    """``work()``, run again while its conditional write loses to a concurrent one."""
    for attempt in range(attempts):
        try:
            return work()
        except ConflictError as error:
            if error.code != "stale_version" or attempt + 1 == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


__all__ = ["STALE_ATTEMPTS", "on_fresh_read"]
