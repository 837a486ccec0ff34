"""Time as the domain sees it: RFC 3339 UTC strings of fixed width, so string order is time order."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now_dt() -> datetime:
    return datetime.now(timezone.utc)


def to_iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime(_FORMAT)


def now_iso() -> str:
    return to_iso(now_dt())


def parse_iso(value: str) -> datetime:
    return datetime.strptime(value, _FORMAT).replace(tzinfo=timezone.utc)


def plus_seconds(iso: str, seconds: float) -> str:
    return to_iso(parse_iso(iso) + timedelta(seconds=seconds))
