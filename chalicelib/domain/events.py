"""Events out: the audit actions a subscriber may name, and the shape of a published event.

Every audit event is also published (``services.events``): to the stack's EventBridge bus (source
``baton``, ``detail-type`` = the action, ``detail`` = the event with its ``project_id`` and
``run_id``) and to the project's webhooks whose ``events`` patterns match its action. A pattern is
an action of ``KNOWN_ACTIONS``, a family of them (``run.*``, ``task.*``), or ``*`` (everything);
anything else is refused when the webhook is created, so a typo never silently matches nothing.

``tests/unit/test_events_out.py`` checks that every action the code commits is listed here: a new
action is added to ``KNOWN_ACTIONS`` (and to the README's list) with the change that commits it.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional

SOURCE = "baton"

KNOWN_ACTIONS = frozenset({
    # runs
    "run.created", "run.started", "run.canary_selected", "run.killed", "run.run_wait", "run.release",
    "run.execution_restarted",
    # tasks and their stage jobs
    "task.created", "task.started", "task.claimed", "task.passed", "task.failed", "task.looped_back",
    "task.stage_set", "task.cancelled", "task.attempts_exhausted", "task.lease_expired", "task.waiting_for_agent",
    "task.execution_restarted", "task.resumed", "tasks.cancelled", "tasks.released",
    "job.dispatched", "job.redispatched", "job.lease_expired",
    # gates
    "approval.requested", "approval.approved", "approval.rejected",
    # evidence
    "handoff.created", "handoff.accepted", "handoff.completed", "handoff.failed",
    "proof.requested", "proof.stored", "findings.reported", "findings.ceiling_reached",
    # usage and budgets
    "usage.reported", "budget.warning", "budget.exhausted",
    # the director (domain.director.vocabulary.ActionKind)
    "director.nudge", "director.escalate", "director.pause_task", "director.reassign",
})
# Families a ``family.*`` pattern may name: those of the known actions.
FAMILIES = frozenset({action.split(".", 1)[0] for action in KNOWN_ACTIONS})
MAX_PATTERNS = 50
# EventBridge takes entries of up to 256 KB per PutEvents request; an event whose detail would be
# larger is published with its data replaced by a marker (the full event: GET /runs/{id}/events).
MAX_DETAIL_BYTES = 200_000
PATTERN_HELP = ("an audit action (e.g. approval.requested), a family of them (run.*, task.*) or * for every "
                "event; families: " + ", ".join(sorted(FAMILIES)))


def check_pattern(pattern: str) -> str:
    """``pattern`` when a subscriber may name it (see the module docstring); ValueError otherwise."""
    if pattern == "*" or pattern in KNOWN_ACTIONS:
        return pattern
    family, dot, rest = pattern.partition(".")
    if dot and rest == "*" and family in FAMILIES:
        return pattern
    near = sorted(a for a in KNOWN_ACTIONS if a.startswith(family + ".")) if family in FAMILIES else []
    hint = f" (known {family} actions: {', '.join(near)})" if near else ""
    raise ValueError(f"unknown event pattern {pattern[:80]!r}: use {PATTERN_HELP}{hint}")


def check_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns, each checked, duplicates dropped (first occurrence kept)."""
    seen: list[str] = []
    for pattern in patterns:
        if check_pattern(pattern) not in seen:
            seen.append(pattern)
    if not seen:
        raise ValueError(f"events must name at least one pattern: {PATTERN_HELP}")
    if len(seen) > MAX_PATTERNS:
        raise ValueError(f"events may name at most {MAX_PATTERNS} patterns")
    return seen


def matches(patterns: Iterable[str], action: str) -> bool:
    """Whether an event of ``action`` is one the patterns ask for."""
    for pattern in patterns:
        if pattern == "*" or pattern == action:
            return True
        if pattern.endswith(".*") and action.startswith(pattern[:-1]):
            return True
    return False


def published(event: dict[str, Any], project_id: str, run_id: str) -> dict[str, Any]:
    """The event as published (EventBridge ``detail``, a webhook's body without its delivery id):
    the audit event with its project and run, its data cut when it would not fit an entry."""
    body = {"project_id": project_id, "run_id": run_id, "seq": int(event["seq"]), "at": event["at"],
            "actor": event.get("actor", ""), "action": event["action"], "entity": event.get("entity", ""),
            "data": event.get("data") or {}}
    if len(json.dumps(body, default=str)) > MAX_DETAIL_BYTES:
        body["data"] = {"truncated": True,
                        "note": f"the event's data is over {MAX_DETAIL_BYTES} bytes; read it with "
                                f"GET /runs/{run_id}/events?after={int(event['seq']) - 1}&limit=1"}
    return body


def describe_data(data: dict[str, Any], *, arrow: str = "→", pair: str = "{}={}", separator: str = " ") -> str:
    """An event's data as a person reads it: its stage and status changes (``dev→qa``), then its
    plain fields (``result=pass``); nested values and empty ones are left out."""
    parts = []
    for what in ("stage", "status"):
        before, after = data.get(f"from_{what}"), data.get(f"to_{what}")
        if before is not None and after is not None and before != after:
            parts.append(f"{before}{arrow}{after}")
    for name, value in data.items():
        if name.startswith(("from_", "to_")) or isinstance(value, (dict, list)) or value in (None, ""):
            continue
        parts.append(pair.format(name, value))
    return separator.join(parts)


def summary_line(event: dict[str, Any], project_name: Optional[str] = None) -> str:
    """One line a person reads in a chat (a Slack-compatible webhook's ``text``): the project, the
    run, the action and what the event says, no links."""
    details = describe_data(event.get("data") or {}, arrow=" → ", pair="{}: {}", separator=", ")
    if len(details) > 300:
        details = details[:299] + "…"
    entity = event.get("entity", "")
    where = f"[{project_name or event.get('project_id', '')}] run {event.get('run_id', '')}"
    line = f"{where}: {event.get('action', '')} #{event.get('seq', '')}"
    if entity and not entity.startswith("run:"):
        line += f" ({entity})"
    if details:
        line += f" - {details}"
    actor = event.get("actor")
    return f"{line} (by {actor})" if actor else line


__all__ = ["FAMILIES", "KNOWN_ACTIONS", "MAX_DETAIL_BYTES", "PATTERN_HELP", "SOURCE", "check_pattern", "describe_data",
           "check_patterns", "matches", "published", "summary_line"]
