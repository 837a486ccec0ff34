"""SARIF 2.1.0 reports (semgrep, CodeQL, trivy, GitHub code scanning, ``bandit -f sarif``)."""

from __future__ import annotations

from typing import Any, Optional

from ..errors import InvalidInputError
from ..severity import Severity
from .fields import (MAX_TEXT, MAX_TITLE, check_count, dict_at, first_line, invalid, is_line, list_at, message_text,
                     normal_path, number_of, optional_list_at, scalar, text_of)
from .finding import SEVERITY_WORDS, Finding

_LEVELS: dict[str, Severity] = {"error": Severity.high, "warning": Severity.medium, "note": Severity.low,
                                "none": Severity.low}
_NOT_A_PROBLEM = frozenset({"pass", "notApplicable", "informational"})


def parse(report: dict[str, Any]) -> list[Finding]:
    version = report.get("version")
    if version is not None and version != "2.1.0":
        shown = repr(version[:20]) if isinstance(version, str) else "that is not a string"
        raise InvalidInputError(f"SARIF version {shown} is not supported; produce SARIF 2.1.0",
                                code="unrecognised_report")
    if version is None and "2.1.0" not in text_of(report.get("$schema")):
        raise InvalidInputError("the SARIF log names no version; produce SARIF 2.1.0", code="unrecognised_report")
    findings: list[Finding] = []
    for run_index, run in enumerate(list_at(report, "runs", ["report"])):
        where = ["report", "runs", str(run_index)]
        if not isinstance(run, dict):
            raise invalid(where, "each run must be an object")
        tool = dict_at(run.get("tool"), where + ["tool"])
        driver = dict_at(tool.get("driver"), where + ["tool", "driver"])
        tool_name = text_of(driver.get("name")) or "sarif"
        rules = [r for r in optional_list_at(driver, "rules", where + ["tool", "driver"]) if isinstance(r, dict)]
        extensions = optional_list_at(tool, "extensions", where + ["tool"])
        extension_rules = [r for i, ext in enumerate(extensions) if isinstance(ext, dict)
                           for r in optional_list_at(ext, "rules", where + ["tool", "extensions", str(i)])
                           if isinstance(r, dict)]
        by_id = {text_of(r.get("id")): r for r in rules + extension_rules if text_of(r.get("id"))}
        results = run.get("results")
        results = [] if results is None else results   # absent/null: the tool did not run to the end
        if not isinstance(results, list):
            raise invalid(where + ["results"], "results must be a list")
        for index, result in enumerate(results):
            if not isinstance(result, dict):
                raise invalid(where + ["results", str(index)], "each result must be an object")
            finding = _sarif_result(result, rules, by_id, tool_name)
            if finding is not None:
                findings.append(finding)
                check_count(len(findings))
    return findings


def _sarif_result(result: dict[str, Any], rules: list[dict[str, Any]], by_id: dict[str, dict[str, Any]],
                  tool_name: str) -> Optional[Finding]:
    if text_of(result.get("kind")) in _NOT_A_PROBLEM or result.get("baselineState") == "absent":
        return None
    suppressions = result.get("suppressions") or []
    if isinstance(suppressions, list) and any(isinstance(s, dict) and s.get("status", "accepted") == "accepted"
                                              for s in suppressions):
        return None
    rule_ref = result.get("rule") if isinstance(result.get("rule"), dict) else {}
    rule_id = text_of(result.get("ruleId")) or text_of(rule_ref.get("id"))
    index = result.get("ruleIndex", rule_ref.get("index"))
    rule: dict[str, Any] = {}
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(rules):
        rule = rules[index]
    elif rule_id in by_id:
        rule = by_id[rule_id]
    rule_id = rule_id or text_of(rule.get("id")) or "unknown-rule"
    message = message_text(result.get("message")) or message_text(rule.get("shortDescription")) or rule_id
    file, line = _location(result.get("locations"))
    help_uri = text_of(rule.get("helpUri"))
    recommendation = (message_text(rule.get("help")) or message_text(rule.get("fullDescription")) or
                      (f"See {help_uri}" if help_uri else ""))
    title = first_line(message)
    description = message if message != title else message_text(rule.get("fullDescription"))
    return Finding(rule_id=rule_id[:200], title=title[:MAX_TITLE], severity=_sarif_severity(result, rule),
                   description=description[:MAX_TEXT], file=file, line=line,
                   recommendation=recommendation[:MAX_TEXT], fingerprint=_fingerprint(result),
                   tool=tool_name[:100], help_uri=help_uri[:500])


def _sarif_severity(result: dict[str, Any], rule: dict[str, Any]) -> Severity:
    result_props = result.get("properties") if isinstance(result.get("properties"), dict) else {}
    rule_props = rule.get("properties") if isinstance(rule.get("properties"), dict) else {}
    for props in (result_props, rule_props):
        score = number_of(props.get("security-severity"))
        if score is not None:
            return severity_from_score(score)
    for props in (result_props, rule_props):
        for name in ("issue_severity", "severity"):     # bandit; tools that name it plainly
            word = SEVERITY_WORDS.get(text_of(props.get(name)).lower())
            if word is not None:
                return word
    tags = rule_props.get("tags") if isinstance(rule_props.get("tags"), list) else []
    for tag in tags:
        if text_of(tag).lower() in ("critical", "high", "medium", "low"):
            return Severity(text_of(tag).lower())
    level = result.get("level")
    if level is None:
        default = rule.get("defaultConfiguration") if isinstance(rule.get("defaultConfiguration"), dict) else {}
        level = default.get("level", "warning")
    return _LEVELS.get(text_of(level), Severity.medium)


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
    return normal_path(text_of(artifact.get("uri")))[:1000], line if is_line(line) else 0


def _fingerprint(result: dict[str, Any]) -> str:
    for name in ("fingerprints", "partialFingerprints"):
        value = result.get(name)
        if isinstance(value, dict) and value:
            return ";".join(f"{k}={scalar(value[k])}" for k in sorted(value))[:1000]
    return ""
