"""Findings through the API: reports become fix tasks exactly once, under the run's ceiling and the
project's threshold; bad reports change nothing. Parsing alone: ``tests/unit/test_findings.py``.

The real scanner output is ``tests/data/bandit_report.sarif`` / ``.json`` (``tests/support/scanner_reports.py``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.api import start_run
from tests.support.aws import table_snapshot as snapshot
from tests.support.proofs import store_proof
from tests.support.scanner_reports import BANDIT_JSON, BANDIT_SARIF, EXPECTED_AT_OR_ABOVE_MEDIUM


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
