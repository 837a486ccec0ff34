"""Findings: scanners' and testers' reports turned into normalized findings (pure, no I/O).

Accepted reports
----------------
* SARIF 2.1.0, as written by semgrep, CodeQL, trivy, GitHub code scanning and ``bandit -f sarif``.
* bandit's JSON report (``bandit -f json``).
* ``security_report``: ``{"findings": [{title|issue, description, severity, file, line, recommendation}]}``.
* ``bugs``: ``{"bugs": [...]}`` with the same items.

Severity
--------
SARIF: a numeric ``security-severity`` (result or rule properties; CVSS-like, as GitHub reads it:
≥9 critical, ≥7 high, ≥4 medium, else low) wins; then a severity word in the result's or rule's
properties (bandit's ``issue_severity``, ``severity``) or the rule's tags (trivy: ``HIGH``); then the
level (``error`` high, ``warning`` medium, ``note``/``none`` low; absent means the rule's default
level, else ``warning``). Simple formats: critical/high/medium/low (and a few synonyms); absent
means medium.

Identity
--------
A finding is "the same" when its rule, file, line and the tool's own fingerprint are the same:
``dedup_key`` hashes those four (not the tool's name, so bandit's SARIF and JSON reports of one
scan name the same findings).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .errors import InvalidInputError, PayloadTooLargeError
from .evidence import ReportFormat, Severity, at_or_above

MAX_FINDINGS = 10_000
MAX_TITLE = 300
MAX_TEXT = 4000

_SEVERITY_WORDS: dict[str, Severity] = {
    "critical": Severity.critical, "blocker": Severity.critical,
    "high": Severity.high, "error": Severity.high, "major": Severity.high,
    "medium": Severity.medium, "moderate": Severity.medium, "warning": Severity.medium,
    "low": Severity.low, "minor": Severity.low, "info": Severity.low, "informational": Severity.low,
    "note": Severity.low, "none": Severity.low, "undefined": Severity.low,
}
_LEVELS: dict[str, Severity] = {"error": Severity.high, "warning": Severity.medium, "note": Severity.low,
                                "none": Severity.low}
_NOT_A_PROBLEM = frozenset({"pass", "notApplicable", "informational"})


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
        parts = [_normal_rule(self.rule_id), _normal_path(self.file), str(self.line), self.fingerprint]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def at_or_above(self, threshold: Severity) -> bool:
        return at_or_above(self.severity, threshold)


@dataclass(frozen=True)
class ParsedReport:
    format: str               # the shape recognised: sarif, bandit, security_report or bugs
    findings: list[Finding]


# --------------------------------------------------------------------------- entry point


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
        "sarif": parse_sarif, "bandit": parse_bandit,
        "security_report": lambda r: parse_simple(r, "findings"), "bugs": lambda r: parse_simple(r, "bugs"),
    }[shape]
    return ParsedReport(shape, parser(report))


# --------------------------------------------------------------------------- SARIF 2.1.0


def parse_sarif(report: dict[str, Any]) -> list[Finding]:
    version = report.get("version")
    if version is not None and version != "2.1.0":
        shown = repr(version[:20]) if isinstance(version, str) else "that is not a string"
        raise InvalidInputError(f"SARIF version {shown} is not supported; produce SARIF 2.1.0",
                                code="unrecognised_report")
    if version is None and "2.1.0" not in _text(report.get("$schema")):
        raise InvalidInputError("the SARIF log names no version; produce SARIF 2.1.0", code="unrecognised_report")
    findings: list[Finding] = []
    for run_index, run in enumerate(_list(report, "runs", ["report"])):
        where = ["report", "runs", str(run_index)]
        if not isinstance(run, dict):
            raise _bad(where, "each run must be an object")
        tool = _dict(run.get("tool"), where + ["tool"])
        driver = _dict(tool.get("driver"), where + ["tool", "driver"])
        tool_name = _text(driver.get("name")) or "sarif"
        rules = [r for r in _optional_list(driver, "rules", where + ["tool", "driver"]) if isinstance(r, dict)]
        extensions = _optional_list(tool, "extensions", where + ["tool"])
        extension_rules = [r for i, ext in enumerate(extensions) if isinstance(ext, dict)
                           for r in _optional_list(ext, "rules", where + ["tool", "extensions", str(i)])
                           if isinstance(r, dict)]
        by_id = {_text(r.get("id")): r for r in rules + extension_rules if _text(r.get("id"))}
        results = run.get("results")
        results = [] if results is None else results   # absent/null: the tool did not run to the end
        if not isinstance(results, list):
            raise _bad(where + ["results"], "results must be a list")
        for index, result in enumerate(results):
            if not isinstance(result, dict):
                raise _bad(where + ["results", str(index)], "each result must be an object")
            finding = _sarif_result(result, rules, by_id, tool_name)
            if finding is not None:
                findings.append(finding)
                _check_count(len(findings))
    return findings


def _sarif_result(result: dict[str, Any], rules: list[dict[str, Any]], by_id: dict[str, dict[str, Any]],
                  tool_name: str) -> Optional[Finding]:
    if _text(result.get("kind")) in _NOT_A_PROBLEM or result.get("baselineState") == "absent":
        return None
    suppressions = result.get("suppressions") or []
    if isinstance(suppressions, list) and any(isinstance(s, dict) and s.get("status", "accepted") == "accepted"
                                              for s in suppressions):
        return None
    rule_ref = result.get("rule") if isinstance(result.get("rule"), dict) else {}
    rule_id = _text(result.get("ruleId")) or _text(rule_ref.get("id"))
    index = result.get("ruleIndex", rule_ref.get("index"))
    rule: dict[str, Any] = {}
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(rules):
        rule = rules[index]
    elif rule_id in by_id:
        rule = by_id[rule_id]
    rule_id = rule_id or _text(rule.get("id")) or "unknown-rule"
    message = _message(result.get("message")) or _message(rule.get("shortDescription")) or rule_id
    file, line = _location(result.get("locations"))
    help_uri = _text(rule.get("helpUri"))
    recommendation = (_message(rule.get("help")) or _message(rule.get("fullDescription")) or
                      (f"See {help_uri}" if help_uri else ""))
    title = _first_line(message)
    description = message if message != title else _message(rule.get("fullDescription"))
    return Finding(rule_id=rule_id[:200], title=title[:MAX_TITLE], severity=_sarif_severity(result, rule),
                   description=description[:MAX_TEXT], file=file, line=line,
                   recommendation=recommendation[:MAX_TEXT], fingerprint=_fingerprint(result),
                   tool=tool_name[:100], help_uri=help_uri[:500])


def _sarif_severity(result: dict[str, Any], rule: dict[str, Any]) -> Severity:
    result_props = result.get("properties") if isinstance(result.get("properties"), dict) else {}
    rule_props = rule.get("properties") if isinstance(rule.get("properties"), dict) else {}
    for props in (result_props, rule_props):
        score = _number(props.get("security-severity"))
        if score is not None:
            return severity_from_score(score)
    for props in (result_props, rule_props):
        for name in ("issue_severity", "severity"):     # bandit; tools that name it plainly
            word = _SEVERITY_WORDS.get(_text(props.get(name)).lower())
            if word is not None:
                return word
    tags = rule_props.get("tags") if isinstance(rule_props.get("tags"), list) else []
    for tag in tags:
        if _text(tag).lower() in ("critical", "high", "medium", "low"):
            return Severity(_text(tag).lower())
    level = result.get("level")
    if level is None:
        default = rule.get("defaultConfiguration") if isinstance(rule.get("defaultConfiguration"), dict) else {}
        level = default.get("level", "warning")
    return _LEVELS.get(_text(level), Severity.medium)


def severity_from_score(score: float) -> Severity:
    """GitHub code scanning's reading of ``security-severity`` (a CVSS-like 0–10 score)."""
    if score >= 9.0:
        return Severity.critical
    if score >= 7.0:
        return Severity.high
    if score >= 4.0:
        return Severity.medium
    return Severity.low


def _location(locations: Any) -> tuple[str, int]:
    if not isinstance(locations, list) or not locations or not isinstance(locations[0], dict):
        return "", 0
    physical = locations[0].get("physicalLocation")
    if not isinstance(physical, dict):
        return "", 0
    artifact = physical.get("artifactLocation") if isinstance(physical.get("artifactLocation"), dict) else {}
    region = physical.get("region") if isinstance(physical.get("region"), dict) else {}
    line = region.get("startLine", 0)
    return _normal_path(_text(artifact.get("uri")))[:1000], line if _is_line(line) else 0


def _fingerprint(result: dict[str, Any]) -> str:
    for name in ("fingerprints", "partialFingerprints"):
        value = result.get(name)
        if isinstance(value, dict) and value:
            return ";".join(f"{k}={_scalar(value[k])}" for k in sorted(value))[:1000]
    return ""


def _scalar(value: Any) -> str:
    """A fingerprint's value as text: strings and numbers as written, anything else (a tool's
    nested object, which SARIF does not allow) as a mark rather than its whole text."""
    if isinstance(value, str):
        return value[:1000]
    if isinstance(value, (bool, int, float)) or value is None:
        return json.dumps(value)[:1000]
    return "<" + type(value).__name__ + ">"


def _message(value: Any) -> str:
    if isinstance(value, dict):
        return _text(value.get("text")) or _text(value.get("markdown"))
    return ""


# --------------------------------------------------------------------------- bandit JSON


def parse_bandit(report: dict[str, Any]) -> list[Finding]:
    findings = []
    for index, item in enumerate(_list(report, "results", ["report"])):
        where = ["report", "results", str(index)]
        if not isinstance(item, dict):
            raise _bad(where, "each result must be an object")
        severity = _SEVERITY_WORDS.get(_text(item.get("issue_severity")).lower())
        if severity is None:
            raise _bad(where + ["issue_severity"], "must be HIGH, MEDIUM or LOW")
        text = _text(item.get("issue_text")) or _text(item.get("test_name")) or "bandit finding"
        line = item.get("line_number", 0)
        more_info = _text(item.get("more_info"))
        cwe = item.get("issue_cwe") if isinstance(item.get("issue_cwe"), dict) else {}
        cwe_id = cwe.get("id")
        cwe_text = str(cwe_id) if _is_line(cwe_id) and cwe_id else _text(cwe_id)[:20]
        description = text
        if cwe_text:
            description += f" (CWE-{cwe_text})"
        findings.append(Finding(
            rule_id=(_text(item.get("test_id")) or "bandit")[:200], title=_first_line(text)[:MAX_TITLE],
            severity=severity, description=description[:MAX_TEXT],
            file=_normal_path(_text(item.get("filename")))[:1000], line=line if _is_line(line) else 0,
            recommendation=f"See {more_info}" if more_info else "", tool="bandit", help_uri=more_info[:500]))
        _check_count(len(findings))
    return findings


# --------------------------------------------------------------------------- security_report / bugs


def parse_simple(report: dict[str, Any], key: str) -> list[Finding]:
    """``{findings|bugs: [{title|issue, description, severity, file, line, recommendation}]}``."""
    findings = []
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(_list(report, key, ["report"])):
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
        if line is not None and not _is_line(line):
            problems.append({"loc": where + ["line"], "msg": "must be a line number (a whole number ≥ 0)"})
            line = 0
        findings.append(Finding(
            rule_id=_normal_rule(title)[:200], title=_first_line(title)[:MAX_TITLE], severity=severity,
            description=texts["description"][:MAX_TEXT], file=_normal_path(texts["file"])[:1000],
            line=line or 0, recommendation=texts["recommendation"][:MAX_TEXT], tool=key))
        _check_count(len(findings))
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
    return _SEVERITY_WORDS.get(value.strip().lower())


# --------------------------------------------------------------------------- helpers


def _bad(loc: list[str], message: str) -> InvalidInputError:
    return InvalidInputError(f"the report is not valid at {'.'.join(loc)}: {message}", code="invalid_report",
                             details=[{"loc": loc, "msg": message}])


def _list(container: dict[str, Any], key: str, where: list[str]) -> list[Any]:
    value = container.get(key)
    if not isinstance(value, list):
        raise _bad(where + [key], "must be a list")
    return value


def _optional_list(container: dict[str, Any], key: str, where: list[str]) -> list[Any]:
    """``container[key]`` when it is a list; absent or null is an empty list; anything else is invalid."""
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(where + [key], "must be a list")
    return value


def _dict(value: Any, where: list[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(where, "must be an object")
    return value


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if 0.0 <= number <= 10.0 else None


def _is_line(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000_000


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def _normal_path(path: str) -> str:
    path = re.sub(r"^file://", "", path.strip())
    while path.startswith("./"):
        path = path[2:]
    return path


def _normal_rule(rule: str) -> str:
    return " ".join(rule.lower().split())


def _check_count(count: int) -> None:
    if count > MAX_FINDINGS:
        raise PayloadTooLargeError(f"the report has more than {MAX_FINDINGS} findings; split it into smaller "
                                   "reports", code="too_many_findings")


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
