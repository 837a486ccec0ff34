"""No input produces a 500: forged cursors, findings reports of odd shapes, deeply nested JSON,
huge numbers, odd query strings.

Table-driven through ``chalice.test.Client``. Every case asserts the documented 4xx (never a 5xx),
the contract's error shape ``{"error": {"code", "message", "details"}}``, and that the table is
exactly what it was before the request (the world is built once per module; a case that wrote
anything would fail itself).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Iterator, Optional
from urllib.parse import quote

import pytest

from tests.support.api import Api
from tests.support.aws import backend_snapshot as snapshot
from tests.support.aws import moto_services


def b64(raw: bytes | str) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forged(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")))


def decoded(cursor: str) -> dict[str, str]:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    api: Api
    services: Any
    ids: dict[str, str]
    cursors: dict[str, str]      # list path -> a real next_cursor of it


LISTS = {"projects": "/projects", "runs": "/projects/demo/runs", "tasks": "/runs/{run}/tasks",
         "handoffs": "/tasks/{task}/handoffs", "task_proofs": "/tasks/{task}/proofs",
         "project_proofs": "/projects/demo/proofs", "keys": "/keys"}


def _ok(response, status: int = 201) -> Any:
    assert response.status_code == status, (response.status_code, response.data)
    return response.data


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    from chalice.test import Client

    import app as app_module

    with moto_services() as services, Client(app_module.app) as client:
        api = Api(client, services.keys.bootstrap_admin()[1])
        for project_id in ("demo", "other", "third"):
            _ok(api.post("/projects", {"id": project_id, "name": project_id,
                                       "repository_url": f"https://example.com/{project_id}.git"}))
        for name in ("a", "b"):
            _ok(api.post("/keys", {"name": name, "principal": "agent", "project_ids": ["demo"]}))
        _ok(api.post("/projects/demo/runs", {"title": "first", "tasks": [{"title": "x"}]}))
        run = _ok(api.post("/projects/demo/runs", {"title": "run", "stages": ["dev", "qa"], "deploy_gate": False,
                                                  "tasks": [{"title": "one"}, {"title": "two"}]}))
        task = _ok(api.get(f"/runs/{run['id']}/tasks"), 200)["items"][0]
        for i in range(2):
            _ok(api.post(f"/tasks/{task['id']}/handoffs", {"from_role": "dev", "to_role": "qa", "summary": f"h{i}",
                                                           "confidence": "high"}))
            _ok(api.post(f"/tasks/{task['id']}/proofs", {"type": "log", "filename": f"l{i}.log",
                                                         "content_type": "text/plain", "size": 1,
                                                         "sha256": "0" * 64}))
        ids = {"run": run["id"], "task": task["id"]}
        cursors = {}
        for name, path in LISTS.items():
            cursor = _ok(api.get(path.format(**ids) + "?limit=1"), 200)["next_cursor"]
            assert cursor, name
            cursors[name] = cursor
        yield World(api, services, ids, cursors)


# --------------------------------------------------------------------------- the cases


@dataclass
class Case:
    method: str
    path: str
    status: int
    code: Optional[str] = None
    body: Any = None
    raw: Optional[str] = None
    query: str = ""


def deep_list(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def deep_text(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def sarif(result: Optional[dict[str, Any]] = None, **run: Any) -> dict[str, Any]:
    driver = {"name": "tool", **run.pop("driver", {})}
    return {"version": "2.1.0", "runs": [{"tool": {"driver": driver, **run.pop("tool", {})},
                                          "results": [result] if result is not None else [], **run}]}


def bandit(**item: Any) -> dict[str, Any]:
    return {"generated_at": "2026-01-01T00:00:00Z", "results": [{"test_id": "B101", "issue_severity": "HIGH",
                                                                 "issue_text": "x", **item}]}


HUGE = 10 ** 4000          # fits a JSON body (pydantic refuses numbers past ~4300 digits)
FINDINGS = "/tasks/{task}/findings"
M = {"message": {"text": "m"}}

# Reports the parsers refuse: (report, error code). As a JSON value in the body.
REFUSED_REPORTS: dict[str, tuple[Any, str]] = {
    "sarif-rules-number": (sarif(driver={"rules": 5}), "invalid_report"),
    "sarif-rules-object": (sarif({"ruleId": "x", **M}, driver={"rules": {"id": "x"}}), "invalid_report"),
    "sarif-extensions-number": (sarif(tool={"extensions": 7}), "invalid_report"),
    "sarif-extension-rules-number": (sarif(tool={"extensions": [{"rules": 3}]}), "invalid_report"),
    "sarif-version-deep": ({"version": deep_list(150), "runs": []}, "unrecognised_report"),
    "sarif-version-huge": ({"version": HUGE, "runs": []}, "unrecognised_report"),
    "sarif-schema-deep": ({"$schema": deep_list(150), "runs": []}, "unrecognised_report"),
    "sarif-results-object": ({"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": {"a": 1}}]},
                             "invalid_report"),
    "sarif-run-deep": ({"version": "2.1.0", "runs": [deep_list(150)]}, "invalid_report"),
    "bandit-severity-deep": (bandit(issue_severity=deep_list(150)), "invalid_report"),
    "bandit-severity-huge": (bandit(issue_severity=HUGE), "invalid_report"),
    "bandit-results-number": ({"generated_at": "x", "metrics": {}, "results": 5}, "unrecognised_report"),
    "simple-line-superscript": ({"findings": [{"title": "t", "line": "²"}]}, "invalid_report"),
    "simple-line-long-digits": ({"findings": [{"title": "t", "line": "9" * 5000}]}, "invalid_report"),
    "simple-line-huge": ({"findings": [{"title": "t", "line": HUGE}]}, "invalid_report"),
    "simple-line-float": ({"findings": [{"title": "t", "line": 1e308}]}, "invalid_report"),
    "simple-title-deep": ({"findings": [{"title": deep_list(150)}]}, "invalid_report"),
    "simple-severity-deep": ({"bugs": [{"title": "t", "severity": deep_list(150)}]}, "invalid_report"),
    "simple-file-huge": ({"bugs": [{"title": "t", "file": HUGE}]}, "invalid_report"),
    "simple-items-deep": ({"findings": deep_list(150)}, "invalid_report"),
    "not-an-object": (deep_list(190), "unrecognised_report"),
}

# The same, as JSON text in a string (parsed by the server's json module, not by pydantic).
REFUSED_TEXT_REPORTS: dict[str, tuple[str, str]] = {
    "text-deep-list": (deep_text(100_000), "invalid_report_json"),
    "text-deep-object": ('{"a":' * 30_000 + "1" + "}" * 30_000, "invalid_report_json"),
    "text-huge-number": ('{"findings": [{"title": "t", "line": ' + "9" * 5000 + "}]}", "invalid_report_json"),
    "text-nan": ('{"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": [{"properties": '
                 '{"security-severity": NaN}, "level": "note", "message": {"text": "m"}}]}]}', "invalid_report_json"),
    "text-infinity-line": ('{"findings": [{"title": "t", "line": Infinity}]}', "invalid_report_json"),
    "text-lone-surrogate": ('{"findings": [{"title": "\\ud800"}]}', "invalid_report_json"),
    "text-lone-surrogate-key": ('{"findings": [{"title": "t", "\\udfff": 1}]}', "invalid_report_json"),
    "text-bom-garbage": ("\ufeff\x00", "invalid_report_json"),
    "text-empty": ("", "invalid_report_json"),
}

# Odd shapes of optional fields the parsers read past (a tool's quirk is not a reason to lose its
# findings): each is one finding, and never a 500.
TOLERATED_REPORTS: dict[str, Any] = {
    "sarif-kind-list": sarif({"kind": [], **M}),
    "sarif-kind-object": sarif({"kind": {"a": 1}, **M}),
    "sarif-baseline-list": sarif({"baselineState": ["absent"], **M}),
    "sarif-level-object": sarif({"level": {"x": 1}, **M}),
    "sarif-huge-security-severity": sarif({**M, "properties": {"security-severity": HUGE}}),
    "sarif-deep-severity": sarif({**M, "properties": {"severity": deep_list(150)}}),
    "sarif-deep-fingerprint": sarif({**M, "fingerprints": {"a": deep_list(150)}}),
    "sarif-huge-fingerprint": sarif({**M, "fingerprints": {"a": HUGE}}),
    "sarif-deep-tag": sarif({"ruleId": "r", **M},
                            driver={"rules": [{"id": "r", "properties": {"tags": [deep_list(150)]}}]}),
    "sarif-deep-rule-id": sarif({"ruleId": "r", **M}, driver={"rules": [{"id": deep_list(150)}]}),
    "sarif-suppressions-object": sarif({**M, "suppressions": {"status": "accepted"}}),
    "sarif-huge-start-line": sarif({**M, "locations": [
        {"physicalLocation": {"artifactLocation": {"uri": "a.py"}, "region": {"startLine": HUGE}}}]}),
    "bandit-cwe-deep": bandit(issue_cwe={"id": deep_list(150)}),
    "bandit-cwe-huge": bandit(issue_cwe={"id": HUGE}),
    "bandit-line-huge": bandit(line_number=HUGE),
    "text-deep-inside-sarif": ('{"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": [{"properties": '
                               '{"severity": ' + deep_text(900) + "}}]}]}"),
    "text-deep-fingerprint": ('{"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": [{"fingerprints": '
                              '{"a": ' + deep_text(900) + "}}]}]}"),
}


def partition_of(cursor: dict[str, str]) -> str:
    return "gsi1pk" if "gsi1pk" in cursor else "pk"


def plausible_cursors(world: World) -> list[tuple[str, str, str]]:
    """Forged cursors of the right list that DynamoDB can start from: any page, never a 500."""
    out = []
    for name, path in LISTS.items():
        real = decoded(world.cursors[name])
        for attribute in real:
            if attribute != partition_of(real):
                for value in (real[attribute] + "\x00", real[attribute][:-1], real[attribute] + "\u00e9"):
                    out.append((name, path.format(**world.ids), forged({**real, attribute: value})))
    return out


def cursor_cases(world: World) -> list[tuple[str, str, str]]:
    """(list name, path, cursor) for forged and foreign cursors of every list."""
    out = []
    garbage = [b64(deep_text(1000)), b64("[" * 1500), b64('{"a":' * 300 + "1" + "}" * 300), b64(b"\xff\xfe\x00"),
               b64("NaN"), b64('{"pk": NaN}'), b64("9" * 1500), b64('"' + "\\ud800" + '"'), "====", "%%%%", "é",
               quote("\x00"), "a" * 2049, b64("{}") + "=" * 10, b64('{"pk": {"S": "x"}, "sk": {"S": "y"}}')]
    for name, path in LISTS.items():
        path = path.format(**world.ids)
        real = decoded(world.cursors[name])
        for cursor in garbage:
            out.append((name, path, cursor))
        for attribute in real:
            for value in ("", "x" * 1025, 7, None, ["x"], {"S": "x"}, real[attribute] + "\ud800",
                          real[attribute][:-1] + "\udc00"):
                out.append((name, path, forged({**real, attribute: value})))
        out.append((name, path, forged({**real, partition_of(real): real[partition_of(real)] + "x"})))
        out.append((name, path, forged({**real, "extra": "x"})))
        out.append((name, path, forged({k: v for k, v in list(real.items())[1:]})))
        # the cursors of every other list
        for other, cursor in world.cursors.items():
            if other != name:
                out.append((name, path, cursor))
    return out


def build_cases(world: World) -> list[tuple[str, Case]]:
    cases: list[tuple[str, Case]] = []
    for name, (report, code) in REFUSED_REPORTS.items():
        cases.append((name, Case("POST", FINDINGS, 400, code, body={"report": report})))
    for name, (text, code) in REFUSED_TEXT_REPORTS.items():
        cases.append((name, Case("POST", FINDINGS, 400, code, body={"report": text})))
    cases.append(("findings-body-lone-surrogate", Case("POST", FINDINGS, 400, None,
                                                       raw='{"report": {"findings": [{"title": "\\ud800"}]}}')))
    for list_name, path, cursor in cursor_cases(world):
        cases.append((f"cursor-{list_name}", Case("GET", path, 400, "invalid_cursor",
                                                   query="cursor=" + quote(cursor, safe="%"))))
    # bodies: nesting deeper than any model allows, huge numbers, wrong shapes (pydantic answers)
    handoff = {"from_role": "dev", "to_role": "qa", "summary": "s", "confidence": "high"}
    for name, path, body in [
            ("handoff-deep-work", "/tasks/{task}/handoffs", {**handoff, "work_done": deep_list(180, {"ref": "r"})}),
            ("handoff-nested-ref", "/tasks/{task}/handoffs", {**handoff, "work_done": [{"ref": {"a": [1]}}]}),
            ("handoff-huge-confidence", "/tasks/{task}/handoffs", {**handoff, "confidence": HUGE}),
            ("handoff-proof-ids-deep", "/tasks/{task}/handoffs", {**handoff, "proof_ids": deep_list(150, "p")}),
            ("run-huge-priority", "/projects/demo/runs", {"title": "r", "tasks": [{"title": "t", "priority": HUGE}]}),
            ("run-huge-iterations", "/projects/demo/runs", {"title": "r", "max_iterations": HUGE}),
            ("run-huge-int-fraction", "/projects/demo/runs", {"title": "r", "canary": {"fraction": 10 ** 400}}),
            ("run-tiny-fraction", "/projects/demo/runs", {"title": "r", "canary": {"fraction": 5e-324}}),
            ("run-huge-ceiling", "/projects/demo/runs", {"title": "r", "ceilings": {"max_tasks": HUGE}}),
            ("proof-deep-type", "/tasks/{task}/proofs", {"type": deep_list(150, "log"), "filename": "a.log",
                                                         "content_type": "text/plain", "size": 1, "sha256": "0" * 64}),
            ("claim-huge-lease", "/queue/claim", {"stage": "dev", "agent_id": "a", "project_id": "demo",
                                                  "lease_seconds": HUGE}),
            ("bug-deep-title", "/projects/demo/bugs", {"title": deep_list(150, "t")}),
            ("key-deep-projects", "/keys", {"name": "k", "principal": "agent", "project_ids": deep_list(150, "d")}),
            ("findings-huge-proof-id", FINDINGS, {"proof_id": HUGE}),
            ("project-settings-deep", "/projects", {"id": "deep", "name": "d", "repository_url":
                                                    "https://example.com/d.git", "settings": {"a": deep_list(180)}}),
            ("project-huge-setting", "/projects", {"id": "huge", "name": "h", "repository_url":
                                                   "https://example.com/h.git", "settings": {"a": HUGE}})]:
        cases.append((name, Case("POST", path, 400, None, body=body)))
    cases.append(("findings-deep-body", Case("POST", FINDINGS, 400, "invalid_json",
                                             raw='{"report": ' + deep_text(1000) + "}")))
    cases.append(("proof-huge-size", Case("POST", "/tasks/{task}/proofs", 413, "proof_too_large", body={
        "type": "log", "filename": "a.log", "content_type": "text/plain", "size": HUGE, "sha256": "0" * 64})))
    for name, path, body in [("patch-project-deep", "/projects/demo", {"settings": {"a": deep_list(180)}}),
                             ("patch-director-huge", "/director/settings", {"max_iterations_default": HUGE})]:
        cases.append((name, Case("PATCH", path, 400, None, body=body)))
    # raw bodies the JSON parser refuses
    for name, raw in [("raw-deep", "[" * 100_000), ("raw-deep-object", '{"a":' * 20_000), ("raw-huge-int", "9" * 5000),
                      ("raw-lone-surrogate", '{"title": "\\udc00"}'), ("raw-nul", "\x00"), ("raw-nan", "NaN")]:
        cases.append((name, Case("POST", "/projects/demo/runs", 400, None, raw=raw)))
    # odd query strings
    for path, query in [("/runs/{run}/tasks", "limit=%C2%B2"), ("/runs/{run}/tasks", "limit=" + "9" * 5000),
                        ("/runs/{run}/tasks", "stage=%FF"), ("/runs/{run}/events", "after=%C2%B2"),
                        ("/runs/{run}/events", "after=" + "9" * 5000), ("/runs/{run}/events", "limit=%00"),
                        ("/tasks/{task}/proofs", "type=%00"), ("/projects/demo/proofs", "run_id=%FF%FE")]:
        cases.append((f"query-{query[:12]}", Case("GET", path, 400, None, query=query)))
    return cases


def run_case(world: World, case: Case):
    path = case.path.format(**world.ids) + (f"?{case.query}" if case.query else "")
    if case.raw is not None:
        return world.api.call(case.method, path, raw=case.raw)
    return world.api.call(case.method, path, case.body)


def contract_error(data: Any) -> bool:
    return (isinstance(data, dict) and set(data) == {"error"} and isinstance(data["error"], dict)
            and set(data["error"]) == {"code", "message", "details"} and isinstance(data["error"]["code"], str)
            and isinstance(data["error"]["message"], str) and isinstance(data["error"]["details"], list))


def test_no_input_is_a_500_and_none_changes_anything(world):
    cases = build_cases(world)
    assert len(cases) > 300
    failures = []
    for name, case in cases:
        before = snapshot(world.services)
        response = run_case(world, case)
        data = response.data if response.body else None
        problem = None
        if response.status_code != case.status:
            problem = f"status {response.status_code}"
        elif not contract_error(data):
            problem = "not the contract's error shape"
        elif case.code and data["error"]["code"] != case.code:
            problem = f"code {data['error']['code']}"
        elif snapshot(world.services) != before:
            problem = "the table changed"
        if problem:
            failures.append(f"{name} {case.method} {case.path} {case.query[:60]}: {problem}: "
                            f"{(response.body or b'')[:300]!r}")
    assert not failures, "\n".join(failures)


def test_odd_shapes_of_optional_report_fields_are_read_past(world):
    failures = []
    for name, report in TOLERATED_REPORTS.items():
        response = world.api.post(FINDINGS.format(**world.ids), {"report": report})
        if response.status_code != 201 or response.data["findings"] != 1 or response.data["format"] not in (
                "sarif", "bandit"):
            failures.append(f"{name}: {response.status_code} {(response.body or b'')[:300]!r}")
    assert not failures, "\n".join(failures)


def test_forged_cursors_that_dynamodb_can_start_from_are_just_a_page(world):
    failures = []
    before = snapshot(world.services)
    for name, path, cursor in plausible_cursors(world):
        response = world.api.get(f"{path}?cursor={quote(cursor, safe='')}")
        if response.status_code != 200 or set(response.data) != {"items", "next_cursor"}:
            failures.append(f"{name}: {response.status_code} {(response.body or b'')[:300]!r}")
    assert not failures, "\n".join(failures)
    assert snapshot(world.services) == before


def test_the_cases_cover_every_list_and_the_findings_parsers(world):
    names = [name for name, _ in build_cases(world)]
    for list_name in LISTS:
        assert sum(n == f"cursor-{list_name}" for n in names) >= 25, list_name
    assert sum(n in REFUSED_REPORTS or n in REFUSED_TEXT_REPORTS for n in names) == \
        len(REFUSED_REPORTS) + len(REFUSED_TEXT_REPORTS)
    assert len(plausible_cursors(world)) >= 3 * len(LISTS)
