"""Identifiers: ULID-like, sortable by creation time, with a type prefix a person can read."""

from __future__ import annotations

import os
import re
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# Every id prefix, in one place. Entity ids are ``{prefix}_{ULID}``; project ids are slugs.
RUN = "run"
TASK = "task"
HANDOFF = "hof"
PROOF = "prf"
API_KEY = "key"
JOB = "job"          # job_{task ULID}_{dispatch:04d}
CLAIM = "clm"        # clm_{random hex}
OUTBOX = "obx"       # obx_{random hex}
ATTENTION = "att"    # att_{ULID}
WEBHOOK = "whk"      # whk_{ULID}
DELIVERY = "dlv"     # dlv_{26 base32 characters of sha256(webhook, run, seq)}: the same for every fan-out
# Secrets carry a prefix too, so a leaked one is recognisable (and scanners can find it).
API_KEY_SECRET = "bt_"        # an API key or a job token  # nosec B105  # a prefix, not a secret
WEBHOOK_SECRET = "whsec_"     # a webhook's signing secret  # nosec B105  # a prefix, not a secret
LAUNCH_CODE_SECRET = "bl_"    # a container job's single-use launch code  # nosec B105  # a prefix, not a secret

PROJECT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
ULID_BODY = r"[0-9A-HJKMNP-TV-Z]{26}"


def ulid(now_ms: int | None = None) -> str:
    """Return a 26-character ULID: 48 bits of milliseconds then 80 random bits (Crockford base32)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id such as ``run_01J...``: the prefix says what it names, the ULID sorts by time."""
    return f"{prefix}_{ulid()}"


def is_valid_id(value: str, prefix: str) -> bool:
    """True when ``value`` looks like an id this server issued with ``prefix``."""
    return bool(re.fullmatch(rf"{prefix}_{ULID_BODY}", value or ""))


def is_valid_project_id(value: str) -> bool:
    return bool(PROJECT_ID_RE.fullmatch(value or ""))
