"""Findings without AWS: scanner reports (SARIF from bandit, CodeQL, Trivy, Semgrep; bandit's JSON;
the simple formats) parsed into findings with severities, files, lines and one key per finding.

The real scanner output is ``tests/data/bandit_report.sarif`` / ``.json`` (``tests/support/scanner_reports.py``).
Through the API, reports becoming fix tasks: ``tests/api/test_findings.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.domain.errors import InvalidInputError
from chalicelib.domain.findings.finding import Finding, fix_task_title, verdict
from chalicelib.domain.findings.reading import parse_report
from chalicelib.domain.findings.reports import ReportFormat
from chalicelib.domain.findings.sarif import severity_from_score
from chalicelib.domain.severity import Severity
from tests.support.scanner_reports import BANDIT_JSON, BANDIT_SARIF, EXPECTED_AT_OR_ABOVE_MEDIUM


def test_bandit_sarif_is_read_with_bandit_severities_files_and_lines():
    parsed = parse_report(ReportFormat.generic, BANDIT_SARIF)
    assert parsed.format == "sarif"
    assert len(parsed.findings) == 10
    serious = {f.rule_id: (f.severity.value, f.file, f.line) for f in parsed.findings
               if f.at_or_above(Severity.medium)}
    assert serious == EXPECTED_AT_OR_ABOVE_MEDIUM
    assert sorted(f.rule_id for f in parsed.findings if f.severity == Severity.low) == ["B105", "B403", "B404"]
    shell = next(f for f in parsed.findings if f.rule_id == "B602")
    assert shell.tool == "Bandit" and "shell=True" in shell.title
    assert "bandit.readthedocs.io" in shell.recommendation


def test_bandit_json_and_sarif_of_one_scan_name_the_same_findings():
    sarif = parse_report(ReportFormat.security_report, BANDIT_SARIF)
    as_json = parse_report(ReportFormat.security_report, json.loads(BANDIT_JSON))
    assert as_json.format == "bandit"
    assert {f.dedup_key for f in sarif.findings} == {f.dedup_key for f in as_json.findings}
    assert {f.rule_id: f.severity for f in sarif.findings} == {f.rule_id: f.severity for f in as_json.findings}


def sarif(results: list[dict[str, Any]], rules: list[dict[str, Any]], tool: str = "tool") -> dict[str, Any]:
    return {"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "runs": [{"tool": {"driver": {"name": tool, "rules": rules}}, "results": results}]}


def location(uri: str, line: int) -> list[dict[str, Any]]:
    return [{"physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": line}}}]


def test_codeql_and_trivy_style_security_severity_scores_map_like_github():
    # CodeQL and trivy put a CVSS-like score on the rule; GitHub code scanning reads it this way.
    rules = [{"id": "py/sql-injection", "shortDescription": {"text": "SQL query built from user input"},
              "properties": {"security-severity": "8.8", "tags": ["security"]}},
             {"id": "CVE-2024-0001", "properties": {"security-severity": "9.8", "tags": ["vulnerability", "CRITICAL"]}},
             {"id": "py/weak-crypto", "properties": {"security-severity": "5.0"}},
             {"id": "py/info", "properties": {"security-severity": "2.0"}}]
    results = [{"ruleId": r["id"], "ruleIndex": i, "level": "warning", "message": {"text": f"problem {i}"},
                "locations": location("src/app.py", 10 + i),
                "partialFingerprints": {"primaryLocationLineHash": f"h{i}"}}
               for i, r in enumerate(rules)]
    parsed = parse_report(ReportFormat.sarif, sarif(results, rules, "CodeQL"))
    assert [f.severity for f in parsed.findings] == [Severity.high, Severity.critical, Severity.medium, Severity.low]
    assert parsed.findings[0].fingerprint == "primaryLocationLineHash=h0"
    assert [severity_from_score(s) for s in (10, 9.0, 8.9, 7.0, 6.9, 4.0, 3.9, 0)] == \
        [Severity.critical, Severity.critical, Severity.high, Severity.high, Severity.medium, Severity.medium,
         Severity.low, Severity.low]


def test_semgrep_style_levels_and_rule_defaults_decide_when_there_is_no_score():
    rules = [{"id": "python.lang.security.audit.eval", "defaultConfiguration": {"level": "error"}},
             {"id": "python.lang.best-practice.open-never-closed", "defaultConfiguration": {"level": "note"}},
             {"id": "no-default"}]
    results = [{"ruleId": "python.lang.security.audit.eval", "message": {"text": "eval on input"},
                "locations": location("file:///src/./x.py", 3)},
               {"ruleId": "python.lang.best-practice.open-never-closed", "message": {"text": "file left open"}},
               {"ruleId": "no-default", "message": {"text": "no level anywhere: SARIF's default is warning"}},
               {"ruleId": "no-default", "level": "error", "message": {"text": "explicit level wins"}}]
    parsed = parse_report(ReportFormat.generic, sarif(results, rules, "Semgrep OSS"))
    assert [f.severity for f in parsed.findings] == [Severity.high, Severity.low, Severity.medium, Severity.high]
    assert parsed.findings[0].file == "/src/./x.py" and parsed.findings[0].line == 3


def test_passes_suppressed_and_absent_results_are_not_findings():
    rules = [{"id": "r1"}]
    base = {"ruleId": "r1", "level": "error", "message": {"text": "m"}}
    results = [{**base, "kind": "pass"}, {**base, "kind": "notApplicable"},
               {**base, "suppressions": [{"kind": "inSource"}]},
               {**base, "suppressions": [{"kind": "external", "status": "rejected"}]},   # rejected: still a finding
               {**base, "baselineState": "absent"}, base]
    parsed = parse_report(ReportFormat.sarif, sarif(results, rules))
    assert len(parsed.findings) == 2


def test_the_simple_formats_take_title_or_issue_and_default_to_medium():
    report = {"findings": [{"title": "Secrets in logs", "severity": "critical", "file": "./app/log.py", "line": 4,
                            "description": "tokens printed", "recommendation": "mask them"},
                           {"issue": "No rate limit on /login", "severity": "Moderate"},
                           {"title": "Missing CSRF token"}]}
    parsed = parse_report(ReportFormat.security_report, report)
    assert [(f.title, f.severity) for f in parsed.findings] == [
        ("Secrets in logs", Severity.critical), ("No rate limit on /login", Severity.medium),
        ("Missing CSRF token", Severity.medium)]
    assert parsed.findings[0].file == "app/log.py" and parsed.findings[0].recommendation == "mask them"
    bugs = parse_report(ReportFormat.bugs, json.dumps({"bugs": [{"title": "Crash on empty input", "severity": "high",
                                                                 "line": "12"}]}))
    assert bugs.format == "bugs" and bugs.findings[0].line == 12 and verdict(bugs.findings) == "fail"


def test_the_same_finding_has_the_same_key_however_it_is_spelled():
    a = Finding(rule_id="Missing  CSRF token", title="x", severity=Severity.low, file="./web/form.py", line=3)
    b = Finding(rule_id="missing csrf token", title="y", severity=Severity.high, file="web/form.py", line=3)
    c = Finding(rule_id="missing csrf token", title="y", severity=Severity.high, file="web/form.py", line=4)
    assert a.dedup_key == b.dedup_key != c.dedup_key


@pytest.mark.parametrize("declared, report, code", [
    (ReportFormat.generic, "{not json", "invalid_report_json"),
    (ReportFormat.generic, "", "invalid_report_json"),
    (ReportFormat.generic, {"something": "else"}, "unrecognised_report"),
    (ReportFormat.generic, ["a", "list"], "unrecognised_report"),
    (ReportFormat.bugs, {"findings": []}, "unrecognised_report"),          # not what format=bugs says
    (ReportFormat.security_report, {"bugs": []}, "unrecognised_report"),
    (ReportFormat.sarif, {"findings": []}, "unrecognised_report"),
    (ReportFormat.generic, {"version": "2.0.0", "runs": []}, "unrecognised_report"),
    (ReportFormat.generic, {"version": "2.1.0", "runs": [{"results": []}]}, "invalid_report"),
    (ReportFormat.generic, {"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": {}}]}, "invalid_report"),
    (ReportFormat.generic, {"findings": [{"severity": "high"}]}, "invalid_report"),
    (ReportFormat.generic, {"findings": [{"title": "t", "severity": "urgent"}]}, "invalid_report"),
    (ReportFormat.generic, {"findings": [{"title": "t", "line": -1}]}, "invalid_report"),
    (ReportFormat.generic, {"findings": ["just text"]}, "invalid_report"),
    (ReportFormat.generic, {"results": [{"test_id": "B1", "issue_severity": "SEVERE"}]}, "invalid_report"),
])
def test_reports_that_are_not_valid_json_or_not_a_known_format_are_refused(declared, report, code):
    with pytest.raises(InvalidInputError) as raised:
        parse_report(declared, report)
    assert raised.value.code == code
    assert raised.value.message


def test_fix_task_titles_fit_the_task_title_limit():
    long = Finding(rule_id="r", title="x" * 500, severity=Severity.high, file="a/" * 50 + "f.py", line=7)
    title = fix_task_title(long)
    assert len(title) <= 200 and title.startswith("Fix high: ")
