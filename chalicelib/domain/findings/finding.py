"""A finding in Baton's terms, the verdict of a report, and the fix task a finding becomes."""

from __future__ import annotations

from dataclasses import dataclass
import hashlib

from ..severity import Severity, at_or_above
from .fields import normal_path, normal_rule

SEVERITY_WORDS: dict[str, Severity] = {
    "critical": Severity.critical, "blocker": Severity.critical,
    "high": Severity.high, "error": Severity.high, "major": Severity.high,
    "medium": Severity.medium, "moderate": Severity.medium, "warning": Severity.medium,
    "low": Severity.low, "minor": Severity.low, "info": Severity.low, "informational": Severity.low,
    "note": Severity.low, "none": Severity.low, "undefined": Severity.low,
}


@dataclass(frozen=True)
class Finding:
    """One problem a tool or a person reported, in Baton's terms."""

    rule_id: str
    title: str
    severity: Severity
    description: str = ""
    file: str = ""
    line: int = 0
    recommendation: str = ""
    fingerprint: str = ""     # the tool's own fingerprint ("" when it gives none)
    tool: str = ""
    help_uri: str = ""

    @property
    def dedup_key(self) -> str:
        parts = [normal_rule(self.rule_id), normal_path(self.file), str(self.line), self.fingerprint]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def at_or_above(self, threshold: Severity) -> bool:
        return at_or_above(self.severity, threshold)


@dataclass(frozen=True)
class ParsedReport:
    format: str               # the shape recognised: sarif, bandit, security_report or bugs
    findings: list[Finding]


def verdict(findings: list[Finding]) -> str:
    """``fail`` when anything critical or high was found, else ``pass``."""
    return "fail" if any(f.severity in (Severity.critical, Severity.high) for f in findings) else "pass"


def fix_task_title(finding: Finding) -> str:
    where = f" ({finding.file}:{finding.line})" if finding.file and finding.line else \
        f" ({finding.file})" if finding.file else ""
    prefix = f"Fix {finding.severity.value}: "
    room = 200 - len(prefix) - len(where)
    title = finding.title if len(finding.title) <= room else finding.title[:max(room - 1, 10)] + "…"
    return (prefix + title + where)[:200]


def fix_task_description(finding: Finding, *, parent_task_id: str, reported_by: str) -> str:
    lines = [f"Reported by {reported_by} on task {parent_task_id}"
             + (f" ({finding.tool}, rule {finding.rule_id})" if finding.tool else "") + ".",
             f"Severity: {finding.severity.value}"]
    if finding.file:
        lines.append(f"Where: {finding.file}" + (f", line {finding.line}" if finding.line else ""))
    if finding.description:
        lines += ["", finding.description]
    if finding.recommendation:
        lines += ["", "Recommendation: " + finding.recommendation]
    if finding.help_uri and finding.help_uri not in finding.recommendation:
        lines.append("More: " + finding.help_uri)
    lines += ["", f"Finding: {finding.dedup_key}"]
    return "\n".join(lines)[:10_000]
