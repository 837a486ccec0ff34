"""A fake clock: ``chalicelib.domain.clock.now_iso`` (which the services read) replaced by a time
moved by hand, so nothing sleeps and no outcome depends on how fast a test runs."""

from __future__ import annotations

import pytest

from chalicelib.domain import clock

T0 = "2030-06-01T12:00:00.000000Z"


class FakeClock:
    def __init__(self, now: str):
        self.now = now

    def __call__(self) -> str:
        return self.now

    def set(self, seconds_after_t0: float) -> None:
        self.now = clock.plus_seconds(T0, seconds_after_t0)


@pytest.fixture
def fake_clock(monkeypatch) -> FakeClock:
    fake = FakeClock(T0)
    monkeypatch.setattr(clock, "now_iso", fake)
    return fake
