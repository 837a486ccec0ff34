"""Turning a report as sent (a JSON string, an object, a stored proof's bytes) into findings: load it
safely, recognise its format, and hand it to its parser."""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

from . import bandit, sarif, simple
from ..errors import InvalidInputError
from .finding import Finding, ParsedReport
from .reports import ReportFormat


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def load_report(raw: Any) -> Any:
    """The report as a JSON value: an object is taken as is, a string is parsed as JSON text.

    JSON text is parsed strictly (no NaN or Infinity), and refused when it nests deeper than
    Python can parse or holds a string that is not text (an unpaired surrogate escape).
    """
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInputError("the report is not UTF-8 text; send the tool's JSON output",
                                    code="invalid_report_json") from None
    if isinstance(raw, str):
        try:
            value = json.loads(raw, parse_constant=_not_json)
        except RecursionError:
            raise InvalidInputError("the report nests too deeply to be a tool's report; send the tool's JSON "
                                    "output unchanged", code="invalid_report_json") from None
        except ValueError as error:
            raise InvalidInputError(f"the report is not valid JSON ({str(error)[:200]}); send the tool's JSON "
                                    "output unchanged", code="invalid_report_json") from None
        _check_text(value)
        return value
    return raw


def _check_text(value: Any) -> None:
    """Every string (and key) of a parsed JSON value is text that can be stored (no unpaired
    surrogate from a ``\\ud800`` escape). Iterative: the value may nest deeply."""
    stack = [value]
    while stack:
        item = stack.pop()
        strings: list[Any] = []
        if isinstance(item, dict):
            strings.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            strings.append(item)
        for text in strings:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise InvalidInputError("the report holds a string that is not text (an unpaired surrogate "
                                            "such as \\ud800); send the tool's JSON output unchanged",
                                            code="invalid_report_json") from None


def detect_format(report: Any) -> Optional[str]:
    if not isinstance(report, dict):
        return None
    if isinstance(report.get("runs"), list) and ("version" in report or "$schema" in report):
        return "sarif"
    results = report.get("results")
    if isinstance(results, list) and ("generated_at" in report or "metrics" in report or
                                      any(isinstance(r, dict) and "test_id" in r for r in results)):
        return "bandit"
    if isinstance(report.get("findings"), list):
        return "security_report"
    if isinstance(report.get("bugs"), list):
        return "bugs"
    return None


_ACCEPTS: dict[ReportFormat, frozenset[str]] = {
    ReportFormat.sarif: frozenset({"sarif"}),
    ReportFormat.bandit: frozenset({"bandit"}),
    ReportFormat.security_report: frozenset({"security_report", "sarif", "bandit"}),
    ReportFormat.bugs: frozenset({"bugs"}),
    ReportFormat.generic: frozenset({"sarif", "bandit", "security_report", "bugs"}),
}

_SHAPES = ('SARIF 2.1.0 ({"version": "2.1.0", "runs": [...]}), bandit JSON ({"results": [...], '
           '"generated_at": ...}), security_report ({"findings": [...]}) or bugs ({"bugs": [...]})')


def parse_report(declared: ReportFormat, raw: Any) -> ParsedReport:
    """Parse ``raw`` (the tool's JSON) as the ``declared`` format; InvalidInputError says what is wrong."""
    report = load_report(raw)
    shape = detect_format(report)
    if shape is None or shape not in _ACCEPTS[declared]:
        expected = ", ".join(sorted(_ACCEPTS[declared]))
        raise InvalidInputError(f"the report is not one of the formats format={declared.value} accepts "
                                f"({expected}); reports may be {_SHAPES}", code="unrecognised_report")
    parser: Callable[[dict[str, Any]], list[Finding]] = {
        "sarif": sarif.parse, "bandit": bandit.parse,
        "security_report": lambda r: simple.parse(r, "findings"), "bugs": lambda r: simple.parse(r, "bugs"),
    }[shape]
    return ParsedReport(shape, parser(report))
