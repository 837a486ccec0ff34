"""Severity of findings: the scale, its order and priorities, and the threshold rule."""

from __future__ import annotations

from enum import Enum
from typing import Sequence


class Severity(str, Enum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"


SEVERITY_RANK: dict[Severity, int] = {Severity.critical: 4, Severity.high: 3, Severity.medium: 2, Severity.low: 1}

# Priority of the task a finding or bug becomes (0–10, higher is claimed first).
SEVERITY_PRIORITY: dict[Severity, int] = {Severity.critical: 10, Severity.high: 10, Severity.medium: 7,
                                          Severity.low: 5}

DEFAULT_FINDING_THRESHOLD = Severity.medium


def at_or_above(severity: Severity, threshold: Severity) -> bool:
    return SEVERITY_RANK[severity] >= SEVERITY_RANK[threshold]


def counts_by_severity(severities: Sequence[Severity]) -> dict[str, int]:
    counts = {s.value: 0 for s in Severity}
    for severity in severities:
        counts[severity.value] += 1
    return counts
