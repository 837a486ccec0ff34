"""The sweeper reconciles in the minute of each ten-minute mark, once per process however often
it sweeps in that minute, and not in the other minutes."""

from __future__ import annotations

from chalicelib.domain import clock
from chalicelib.services import sweeper as sweeping


def test_the_sweeper_reconciles_once_at_each_ten_minute_mark(services, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(services.sweeper.reconciler, "reconcile", lambda *a, **k: calls.append(1) or 0)
    times = iter(["2030-06-01T12:09:59.000000Z", "2030-06-01T12:10:00.000000Z", "2030-06-01T12:10:30.000000Z",
                  "2030-06-01T12:11:00.000000Z", "2030-06-01T12:20:05.000000Z"])
    for _ in range(5):
        now = next(times)
        monkeypatch.setattr(clock, "now_iso", lambda now=now: now)
        services.sweeper.sweep_once()
    assert len(calls) == 2                                   # 12:10 (once) and 12:20
    assert sweeping.RECONCILE_EVERY_MINUTES == 10
