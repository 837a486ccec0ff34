"""bandit's JSON report (``bandit -f json``)."""

from __future__ import annotations

from typing import Any

from .fields import MAX_TEXT, MAX_TITLE, check_count, first_line, invalid, is_line, list_at, normal_path, text_of
from .finding import SEVERITY_WORDS, Finding


def parse(report: dict[str, Any]) -> list[Finding]:
    findings = []
    for index, item in enumerate(list_at(report, "results", ["report"])):
        where = ["report", "results", str(index)]
        if not isinstance(item, dict):
            raise invalid(where, "each result must be an object")
        severity = SEVERITY_WORDS.get(text_of(item.get("issue_severity")).lower())
        if severity is None:
            raise invalid(where + ["issue_severity"], "must be HIGH, MEDIUM or LOW")
        text = text_of(item.get("issue_text")) or text_of(item.get("test_name")) or "bandit finding"
        line = item.get("line_number", 0)
        more_info = text_of(item.get("more_info"))
        cwe = item.get("issue_cwe") if isinstance(item.get("issue_cwe"), dict) else {}
        cwe_id = cwe.get("id")
        cwe_text = str(cwe_id) if is_line(cwe_id) and cwe_id else text_of(cwe_id)[:20]
        description = text
        if cwe_text:
            description += f" (CWE-{cwe_text})"
        findings.append(Finding(
            rule_id=(text_of(item.get("test_id")) or "bandit")[:200], title=first_line(text)[:MAX_TITLE],
            severity=severity, description=description[:MAX_TEXT],
            file=normal_path(text_of(item.get("filename")))[:1000], line=line if is_line(line) else 0,
            recommendation=f"See {more_info}" if more_info else "", tool="bandit", help_uri=more_info[:500]))
        check_count(len(findings))
    return findings
