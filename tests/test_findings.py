"""Findings: reports parsed without AWS; through the API, reports become fix tasks exactly once.

The real scanner output is ``tests/data/bandit_report.sarif`` / ``.json``: bandit 1.9.4 run on
``tests/data/sample_app`` (see its README). It holds 10 results: 2 high, 5 medium, 3 low.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.errors import InvalidInputError
from chalicelib.domain.findings.reports import ReportFormat
from chalicelib.domain.severity import Severity
from chalicelib.domain.findings import (Finding, fix_task_title, parse_report, severity_from_score, verdict)
from tests.conftest import start_run
from tests.test_proofs import snapshot, store_proof

DATA = Path(__file__).resolve().parent / "data"
BANDIT_SARIF = (DATA / "bandit_report.sarif").read_text()
BANDIT_JSON = (DATA / "bandit_report.json").read_text()
EXPECTED_AT_OR_ABOVE_MEDIUM = {  # rule -> (severity, file, line): what a human reads in bandit's report
    "B602": ("high", "tests/data/sample_app/app.py", 14),
    "B324": ("high", "tests/data/sample_app/app.py", 29),
    "B506": ("medium", "tests/data/sample_app/app.py", 19),
    "B301": ("medium", "tests/data/sample_app/app.py", 24),
    "B307": ("medium", "tests/data/sample_app/app.py", 34),
    "B306": ("medium", "tests/data/sample_app/storage.py", 8),
    "B104": ("medium", "tests/data/sample_app/storage.py", 13),
}


# --------------------------------------------------------------------------- pure parsing


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


# --------------------------------------------------------------------------- through the API


@pytest.fixture
def sec_task(api, project) -> dict[str, Any]:
    run = start_run(api, tasks=1, stages=["dev", "sec"])
    return api.get(f"/runs/{run['id']}/tasks").data["items"][0]


def report(api, task_id: str, body: Any, fmt: str = "generic"):
    return api.post(f"/tasks/{task_id}/findings", {"format": fmt, "report": body})


def test_a_real_bandit_sarif_becomes_the_expected_fix_tasks_and_twice_creates_nothing(api, services, sec_task):
    first = report(api, sec_task["id"], json.loads(BANDIT_SARIF), "security_report")
    assert first.status_code == 201, first.data
    result = first.data
    assert result["verdict"] == "fail"
    assert result["counts"] == {"critical": 0, "high": 2, "medium": 5, "low": 3}
    assert result["format"] == "sarif" and result["threshold"] == "medium" and result["below_threshold"] == 3
    created = result["created_tasks"]
    assert len(created) == 7
    assert [t["priority"] for t in created] == [10, 10, 7, 7, 7, 7, 7]        # most severe first
    assert all(t["source"] == "finding" and t["parent_task_id"] == sec_task["id"] for t in created)
    assert all(t["run_id"] == sec_task["run_id"] and t["stage"] == "dev" and t["status"] == "queued"
               for t in created)
    for rule, (severity, file, line) in EXPECTED_AT_OR_ABOVE_MEDIUM.items():
        matching = [t for t in created if f"rule {rule})" in t["description"]]
        assert len(matching) == 1, rule
        assert matching[0]["title"].startswith(f"Fix {severity}: ") and f"({file}:{line})" in matching[0]["title"]

    again = report(api, sec_task["id"], BANDIT_SARIF)               # same scan, as JSON text this time
    assert again.status_code == 201
    assert again.data["created_tasks"] == [] and again.data["already_reported"] == 7
    json_too = report(api, sec_task["id"], json.loads(BANDIT_JSON), "security_report")
    assert json_too.data["created_tasks"] == [] and json_too.data["already_reported"] == 7
    tasks = api.get(f"/runs/{sec_task['run_id']}/tasks?limit=200").data["items"]
    assert len([t for t in tasks if t["source"] == "finding"]) == 7
    run = api.get(f"/runs/{sec_task['run_id']}").data
    assert run["progress"]["total"] == 8
    events = api.get(f"/runs/{sec_task['run_id']}/events?limit=200").data["items"]
    assert [e["action"] for e in events].count("findings.reported") == 3
    # Each finding's record names its fix task, written in the task's own transaction.
    linked = {t["id"] for t in created}
    from chalicelib.adapters.dynamodb import keyspace as table_keys

    found = services.repos.client.query(
        TableName=services.repos.table.name, KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": {"S": table_keys.finding(sec_task["run_id"], "x")["pk"]},
                                   ":s": {"S": table_keys.finding(sec_task["run_id"], "")["sk"]}})["Items"]
    assert {item["fix_task_id"]["S"] for item in found} == linked


def test_fix_tasks_enter_the_pipeline_like_any_task(api, sec_task):
    created = report(api, sec_task["id"], {"findings": [{"title": "SQL injection in search", "severity": "critical",
                                                         "file": "search.py", "line": 9}]}).data["created_tasks"]
    claimed = api.post("/queue/claim", {"stage": "dev", "agent_id": "fixer", "project_id": "demo"})
    assert claimed.status_code == 200
    # the fix task (priority 10) is claimed before the run's own task (priority 5)
    assert claimed.data["task"]["id"] == created[0]["id"]
    assert api.get(f"/tasks/{created[0]['id']}").data["parent_task_id"] == sec_task["id"]


def test_low_findings_pass_and_make_no_tasks_at_the_default_threshold(api, sec_task):
    result = report(api, sec_task["id"], {"bugs": [{"title": "typo in footer", "severity": "low"}]}, "bugs").data
    assert result["verdict"] == "pass" and result["created_tasks"] == [] and result["below_threshold"] == 1


def test_the_project_setting_lowers_the_threshold(api, sec_task):
    assert api.patch("/projects/demo", {"settings": {"finding_threshold": "low"}}).status_code == 200
    result = report(api, sec_task["id"], {"bugs": [{"title": "typo in footer", "severity": "low"}]}).data
    assert result["threshold"] == "low" and [t["priority"] for t in result["created_tasks"]] == [5]


def test_the_run_ceiling_on_fix_tasks_holds_and_the_excess_is_recorded(api, project):
    run = start_run(api, tasks=1, stages=["dev", "sec"], ceilings={"max_fix_tasks": 3})
    task = api.get(f"/runs/{run['id']}/tasks").data["items"][0]
    result = report(api, task["id"], json.loads(BANDIT_SARIF)).data
    assert len(result["created_tasks"]) == 3 and result["over_ceiling"] == 4
    assert [t["priority"] for t in result["created_tasks"]] == [10, 10, 7]   # the ceiling keeps the severe ones
    again = report(api, task["id"], {"findings": [{"title": "new problem", "severity": "high"}]}).data
    assert again["created_tasks"] == [] and again["over_ceiling"] == 1
    events = api.get(f"/runs/{run['id']}/events?limit=200").data["items"]
    ceiling = [e for e in events if e["action"] == "findings.ceiling_reached"]
    assert len(ceiling) == 2
    assert ceiling[0]["data"]["max_fix_tasks"] == 3 and ceiling[0]["data"]["not_created_count"] == 4
    assert {n["rule_id"] for n in ceiling[0]["data"]["not_created"]} <= set(EXPECTED_AT_OR_ABOVE_MEDIUM)
    assert api.get(f"/runs/{run['id']}").data["progress"]["total"] == 4


def test_a_report_too_large_for_a_body_is_read_from_a_stored_proof(api, services, sec_task):
    proof = store_proof(api, services, sec_task["id"], "report", BANDIT_SARIF.encode(), "bandit.sarif",
                        "application/sarif+json")
    result = api.post(f"/tasks/{sec_task['id']}/findings", {"format": "sarif", "proof_id": proof["id"]})
    assert result.status_code == 201, result.data
    assert len(result.data["created_tasks"]) == 7


BAD_REPORTS = [
    ({"format": "generic", "report": "{\"runs\": [oops"}, 400, "invalid_report_json"),
    ({"format": "generic", "report": {"issues": []}}, 400, "unrecognised_report"),
    ({"format": "bugs", "report": {"findings": [{"title": "x"}]}}, 400, "unrecognised_report"),
    ({"format": "generic", "report": {"findings": [{"title": "x", "severity": "sky-high"}]}}, 400, "invalid_report"),
    ({"format": "pdf", "report": {}}, 400, "invalid_body"),
    ({"format": "generic"}, 400, "invalid_body"),
    ({"format": "generic", "report": {}, "proof_id": "prf_x"}, 400, "invalid_body"),
    ({"format": "generic", "report": {"findings": []}, "extra": 1}, 400, "invalid_body"),
    ({"format": "generic", "proof_id": "prf_01ARZ3NDEKTSV4RRFFQ69G5FAV"}, 404, "not_found"),
]


def test_bad_reports_are_refused_and_leave_nothing_behind(api, services, sec_task):
    before = snapshot(services)
    for body, status, code in BAD_REPORTS:
        response = api.post(f"/tasks/{sec_task['id']}/findings", body)
        assert response.status_code == status, (body, response.data)
        assert response.data["error"]["code"] == code, body
    response = api.post(f"/tasks/{sec_task['id']}/findings", raw="{format: sarif")
    assert response.status_code == 400 and response.data["error"]["code"] == "invalid_json"
    assert snapshot(services) == before


def test_agents_of_other_projects_cannot_report_on_the_task(api, sec_task):
    api.post("/projects", {"id": "other", "name": "Other", "repository_url": "https://example.com/o.git"})
    key = api.post("/keys", {"name": "other-agent", "principal": "agent", "project_ids": ["other"]}).data["key"]
    response = api.as_key(key).post(f"/tasks/{sec_task['id']}/findings",
                                    {"format": "bugs", "report": {"bugs": [{"title": "x", "severity": "high"}]}})
    assert response.status_code == 404


# --------------------------------------------------------------------------- races, made deterministic


def test_a_finding_reported_concurrently_creates_one_task(api, services, sec_task, monkeypatch):
    body = {"findings": [{"title": "Open redirect", "severity": "high", "file": "r.py", "line": 2}]}
    assert len(report(api, sec_task["id"], body).data["created_tasks"]) == 1
    real = services.repos.findings.records
    reads = []

    def stale_then_real(run_id, keys):
        reads.append(run_id)
        return {} if len(reads) == 1 else real(run_id, keys)   # the first read misses the other writer's record

    monkeypatch.setattr(services.repos.findings, "records", stale_then_real)
    second = report(api, sec_task["id"], body).data
    assert second["created_tasks"] == [] and second["already_reported"] == 1
    assert len(reads) == 2                                      # the failed condition was read back
    assert api.get(f"/runs/{sec_task['run_id']}").data["progress"]["total"] == 2
    assert services.repos.findings.fix_count(sec_task["run_id"]) == 1


def test_the_ceiling_holds_when_another_writer_took_the_last_slot(api, services, project, monkeypatch):
    run = start_run(api, tasks=1, stages=["dev", "sec"], ceilings={"max_fix_tasks": 1})
    task = api.get(f"/runs/{run['id']}/tasks").data["items"][0]
    assert len(report(api, task["id"], {"findings": [{"title": "one", "severity": "high"}]}).data["created_tasks"]) == 1
    real = services.repos.findings.fix_count
    reads = []
    monkeypatch.setattr(services.repos.findings, "fix_count",
                        lambda run_id: (reads.append(run_id), 0 if len(reads) == 1 else real(run_id))[1])
    result = report(api, task["id"], {"findings": [{"title": "two", "severity": "high"}]}).data
    assert result["created_tasks"] == [] and result["over_ceiling"] == 1
    assert api.get(f"/runs/{run['id']}").data["progress"]["total"] == 2
