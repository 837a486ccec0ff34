"""The simple formats: ``security_report`` (``{"findings": [...]}``) and ``bugs`` (``{"bugs": [...]}``),
items with title|issue, description, severity, file, line, recommendation."""

from __future__ import annotations

from typing import Any, Optional

from ..errors import InvalidInputError
from ..severity import Severity
from .fields import MAX_TEXT, MAX_TITLE, check_count, first_line, is_line, list_at, normal_path, normal_rule
from .finding import SEVERITY_WORDS, Finding


def parse(report: dict[str, Any], key: str) -> list[Finding]:
    """``{findings|bugs: [{title|issue, description, severity, file, line, recommendation}]}``."""
    findings = []
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(list_at(report, key, ["report"])):
        where = ["report", key, str(index)]
        if not isinstance(item, dict):
            problems.append({"loc": where, "msg": "must be an object"})
            continue
        title = item.get("title", item.get("issue"))
        if not isinstance(title, str) or not title.strip():
            problems.append({"loc": where + ["title"], "msg": "title (or issue) must be non-empty text"})
            continue
        severity = _simple_severity(item.get("severity"))
        if severity is None:
            problems.append({"loc": where + ["severity"], "msg": "must be critical, high, medium or low"})
            continue
        texts = {}
        for name in ("description", "file", "recommendation"):
            value = item.get(name)
            if value is not None and not isinstance(value, str):
                problems.append({"loc": where + [name], "msg": "must be text"})
            texts[name] = value if isinstance(value, str) else ""
        line = item.get("line")
        if isinstance(line, str) and line.isascii() and line.isdigit() and len(line) <= 9:
            line = int(line)
        if line is not None and not is_line(line):
            problems.append({"loc": where + ["line"], "msg": "must be a line number (a whole number ≥ 0)"})
            line = 0
        findings.append(Finding(
            rule_id=normal_rule(title)[:200], title=first_line(title)[:MAX_TITLE], severity=severity,
            description=texts["description"][:MAX_TEXT], file=normal_path(texts["file"])[:1000],
            line=line or 0, recommendation=texts["recommendation"][:MAX_TEXT], tool=key))
        check_count(len(findings))
    if problems:
        raise InvalidInputError(f"the {key} report has {len(problems)} invalid item(s): check "
                                f"{', '.join('.'.join(p['loc']) for p in problems[:5])}",
                                code="invalid_report", details=problems[:50])
    return findings


def _simple_severity(value: Any) -> Optional[Severity]:
    if value is None or value == "":
        return Severity.medium
    if not isinstance(value, str):
        return None
    return SEVERITY_WORDS.get(value.strip().lower())
