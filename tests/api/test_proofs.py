"""Proofs through the API: declared, uploaded with the presigned POST, confirmed against S3, listed,
downloaded, and required by a stage before it passes.

Here moto runs in-process, where an agent's upload is a plain ``put_object`` (moto in-process does
not serve HTTP); ``tests/e2e/test_proof_uploads.py`` uploads for real over HTTP to a moto server.
``tests/unit/test_proofs.py`` holds the rules that need no AWS.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from chalicelib.domain.proofs import MB
from tests.support.api import Api, start_run
from tests.support.aws import table_snapshot as snapshot
from tests.support.proofs import REPORT, bucket_keys, declare, put_object, sha256, store_proof


def policy_of(upload: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(upload["fields"]["policy"]))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def task(api, project) -> dict[str, Any]:
    run = start_run(api, tasks=1, stages=["dev", "qa"])
    return api.get(f"/runs/{run['id']}/tasks").data["items"][0]


@pytest.fixture
def claimed(api, services, project) -> dict[str, Any]:
    """A task claimed at qa (qa requires test_result by default); dev passed with its code_diff."""
    start_run(api, tasks=1, stages=["dev", "qa"])
    return claim_and_pass_dev(api, services)


def claim_and_pass_dev(api: Api, services: Any) -> dict[str, Any]:
    dev = api.post("/queue/claim", {"stage": "dev", "agent_id": "dev-1", "project_id": "demo"}).data
    store_proof(api, services, dev["task"]["id"], "code_diff", b"diff --git a/x b/x\n", "change.diff", "text/x-diff")
    passed = api.post(f"/tasks/{dev['task']['id']}/advance", {"claim_id": dev["claim"]["claim_id"], "result": "pass"})
    assert passed.status_code == 200, passed.data
    qa = api.post("/queue/claim", {"stage": "qa", "agent_id": "qa-1", "project_id": "demo"})
    assert qa.status_code == 200, qa.data
    return qa.data


# --------------------------------------------------------------------------- declaring an upload


def test_a_declared_proof_gets_a_presigned_post_limited_to_its_size_type_key_and_15_minutes(api, task):
    before = datetime.now(timezone.utc)
    response = declare(api, task["id"])
    assert response.status_code == 201, response.data
    proof, upload = response.data["proof"], response.data["upload"]
    assert proof["status"] == "pending" and proof["id"].startswith("prf_")
    assert proof["s3_key"] == (f"projects/demo/runs/{task['run_id']}/tasks/{task['id']}/dev-1/test_result/"
                               f"{proof['id']}-junit.xml")
    assert (proof["stage"], proof["iteration"], proof["size"], proof["sha256"]) == ("dev", 1, len(REPORT),
                                                                                   sha256(REPORT))
    assert upload["fields"]["key"] == proof["s3_key"]
    assert upload["fields"]["Content-Type"] == "application/xml"
    policy = policy_of(upload)
    conditions = policy["conditions"]
    assert ["content-length-range", len(REPORT), len(REPORT)] in conditions
    assert {"Content-Type": "application/xml"} in conditions
    assert {"key": proof["s3_key"]} in conditions
    assert {"bucket": "baton-test-proofs"} in conditions
    expiration = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert expiration <= before + timedelta(minutes=15, seconds=1)
    assert expiration > before + timedelta(minutes=14)
    expires_at = datetime.strptime(upload["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs((expires_at - expiration).total_seconds()) < 5
    assert api.get(f"/proofs/{proof['id']}").data == proof


BAD_FILENAMES = ["..", "../etc/passwd", "a..b", "a/b.txt", "/abs.txt", "a\\b.txt", "nul\x00byte.txt", "", ".",
                 "sp ace.txt", "x" * 129, "tab\t.txt", "\u00e9.txt", "new\nline"]
BAD_DECLARATIONS = [{"content_type": "text"}, {"content_type": "text/plain\r\nX-Evil: 1"}, {"sha256": "abc"},
                    {"sha256": "g" * 64}, {"size": 0}, {"size": "10"}, {"type": "video"}, {"s3_key": "mine"},
                    {"status": "stored"}, {"filename": 7}]


def test_filenames_outside_the_safe_set_are_refused_and_leave_nothing_behind(api, services, task):
    before = snapshot(services)
    for filename in BAD_FILENAMES:
        response = declare(api, task["id"], filename=filename)
        assert response.status_code == 400, (filename, response.data)
        assert response.data["error"]["code"] == "invalid_body", filename
        assert "filename" in response.data["error"]["message"], filename
    assert snapshot(services) == before
    assert bucket_keys(services) == []


def test_other_bad_declarations_are_refused_and_leave_nothing_behind(api, services, task):
    before = snapshot(services)
    for overrides in BAD_DECLARATIONS:
        response = declare(api, task["id"], **overrides)
        assert response.status_code == 400, (overrides, response.data)
        assert response.data["error"]["code"] == "invalid_body", overrides
    assert snapshot(services) == before


def test_size_limits_depend_on_the_type_and_leave_nothing_behind_when_exceeded(api, services, task):
    before = snapshot(services)
    too_big = declare(api, task["id"], "screenshot", filename="s.png", content_type="image/png", size=10 * MB + 1)
    assert too_big.status_code == 413 and too_big.data["error"]["code"] == "proof_too_large"
    assert "10 MB" in too_big.data["error"]["message"]
    assert declare(api, task["id"], "log", filename="l.txt", size=50 * MB + 1).status_code == 413
    assert snapshot(services) == before
    assert declare(api, task["id"], "log", filename="l.txt", size=50 * MB).status_code == 201
    assert declare(api, task["id"], "screenshot", filename="s.png", content_type="image/png",
                   size=10 * MB).status_code == 201


# --------------------------------------------------------------------------- confirming


def test_confirm_checks_size_type_and_sha256_and_is_idempotent(api, services, task):
    declared = declare(api, task["id"]).data["proof"]
    put_object(services, declared["s3_key"], REPORT, "application/xml")
    confirmed = api.post(f"/proofs/{declared['id']}/confirm")
    assert confirmed.status_code == 200
    assert confirmed.data["status"] == "stored" and confirmed.data["confirmed_at"]
    again = api.post(f"/proofs/{declared['id']}/confirm")
    assert again.status_code == 200 and again.data == confirmed.data
    events = api.get(f"/runs/{task['run_id']}/events").data["items"]
    assert [e["action"] for e in events].count("proof.stored") == 1


def test_confirm_without_an_upload_is_a_conflict_and_changes_nothing(api, services, task):
    declared = declare(api, task["id"]).data["proof"]
    before = snapshot(services)
    response = api.post(f"/proofs/{declared['id']}/confirm")
    assert response.status_code == 409 and response.data["error"]["code"] == "proof_not_uploaded"
    assert snapshot(services) == before


MISMATCHES = [(REPORT + b"<!-- more -->", "application/xml", "bytes, the declaration says"),
              (REPORT, "text/html", "content type"),
              (REPORT.replace(b"a", b"b"), "application/xml", "sha256")]        # same size, other bytes


def test_confirm_of_an_object_that_differs_deletes_it_and_stores_nothing(api, services, task):
    for data, content_type, what in MISMATCHES:
        declared = declare(api, task["id"]).data["proof"]
        put_object(services, declared["s3_key"], data, content_type)
        before = snapshot(services)
        response = api.post(f"/proofs/{declared['id']}/confirm")
        assert response.status_code == 422, (what, response.data)
        assert response.data["error"]["code"] == "proof_mismatch" and what in response.data["error"]["message"]
        assert bucket_keys(services) == [], what
        assert snapshot(services) == before, what
        assert api.get(f"/proofs/{declared['id']}").data["status"] == "pending"
    # the right file, uploaded again with the same form, confirms
    put_object(services, declared["s3_key"], REPORT, "application/xml")
    assert api.post(f"/proofs/{declared['id']}/confirm").data["status"] == "stored"


def test_confirm_takes_no_body(api, task):
    declared = declare(api, task["id"]).data["proof"]
    assert api.post(f"/proofs/{declared['id']}/confirm", {"status": "stored"}).status_code == 400


# --------------------------------------------------------------------------- reading


def test_download_is_a_302_to_a_short_lived_presigned_get(api, services, task):
    proof = store_proof(api, services, task["id"])
    response = api.get(f"/proofs/{proof['id']}/download")
    assert response.status_code == 302
    location = urlparse(response.headers["Location"])
    assert location.path.endswith(proof["s3_key"])
    query = parse_qs(location.query)
    assert int(query["X-Amz-Expires"][0]) <= 300
    assert "attachment" in query["response-content-disposition"][0]
    pending = declare(api, task["id"], filename="other.xml").data["proof"]
    refused = api.get(f"/proofs/{pending['id']}/download")
    assert refused.status_code == 409 and refused.data["error"]["code"] == "proof_not_stored"


def test_in_a_versioned_bucket_the_checked_version_is_what_is_served(api, services, task):
    s3, bucket = services.proofs.objects.client, services.settings.bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    proof = store_proof(api, services, task["id"])
    assert proof["s3_version_id"]
    # the form is still valid: an overwrite of the same size and type, other bytes
    put_object(services, proof["s3_key"], REPORT.replace(b"a", b"b"), "application/xml")
    query = parse_qs(urlparse(api.get(f"/proofs/{proof['id']}/download").headers["Location"]).query)
    assert query["versionId"] == [proof["s3_version_id"]]
    served = s3.get_object(Bucket=bucket, Key=proof["s3_key"], VersionId=query["versionId"][0])["Body"].read()
    assert served == REPORT


def test_proofs_are_listed_per_task_and_per_project_newest_first_and_filtered(api, services, project):
    run_a = start_run(api, tasks=2, stages=["dev", "qa"])
    run_b = start_run(api, tasks=1, stages=["dev", "qa"])
    a1, a2 = api.get(f"/runs/{run_a['id']}/tasks").data["items"]
    b1 = api.get(f"/runs/{run_b['id']}/tasks").data["items"][0]
    made = [store_proof(api, services, a1["id"], "log", b"log 1", "one.log", "text/plain"),
            store_proof(api, services, a1["id"], "test_result"),
            store_proof(api, services, a2["id"], "log", b"log 2", "two.log", "text/plain"),
            store_proof(api, services, b1["id"], "report", b"{}", "r.json", "application/json")]
    ids = [p["id"] for p in made]
    listed = api.get(f"/tasks/{a1['id']}/proofs").data
    assert [p["id"] for p in listed["items"]] == [ids[1], ids[0]] and listed["next_cursor"] is None
    assert [p["id"] for p in api.get(f"/tasks/{a1['id']}/proofs?type=log").data["items"]] == [ids[0]]
    everything = api.get("/projects/demo/proofs").data["items"]
    assert [p["id"] for p in everything] == list(reversed(ids))
    assert [p["id"] for p in api.get(f"/projects/demo/proofs?run_id={run_a['id']}").data["items"]] == \
        [ids[2], ids[1], ids[0]]
    assert [p["id"] for p in api.get(f"/projects/demo/proofs?run_id={run_a['id']}&type=log").data["items"]] == \
        [ids[2], ids[0]]
    page = api.get("/projects/demo/proofs?limit=3").data
    rest = api.get(f"/projects/demo/proofs?limit=3&cursor={page['next_cursor']}").data
    assert [p["id"] for p in page["items"] + rest["items"]] == list(reversed(ids)) and rest["next_cursor"] is None
    first = api.get(f"/tasks/{a1['id']}/proofs?limit=1").data
    second = api.get(f"/tasks/{a1['id']}/proofs?limit=1&cursor={first['next_cursor']}").data
    assert [p["id"] for p in first["items"] + second["items"]] == [ids[1], ids[0]]


def test_bad_list_queries_are_400(api, task):
    for path, query, code in [(f"/tasks/{task['id']}/proofs", "type=video", "invalid_query"),
                              (f"/tasks/{task['id']}/proofs", "bogus=1", "invalid_query"),
                              (f"/tasks/{task['id']}/proofs", "limit=0", "invalid_limit"),
                              (f"/tasks/{task['id']}/proofs", "cursor=garbage", "invalid_cursor"),
                              ("/projects/demo/proofs", "run_id=nope", "invalid_query"),
                              ("/projects/demo/proofs", "type=Log", "invalid_query"),
                              ("/projects/demo/proofs", "cursor=e30", "invalid_cursor")]:
        response = api.get(f"{path}?{query}")
        assert response.status_code == 400, (query, response.data)
        assert response.data["error"]["code"] == code, query


def test_a_cursor_of_the_handoff_list_is_not_accepted_by_the_proof_list(api, services, task):
    for i in range(2):
        api.post(f"/tasks/{task['id']}/handoffs", {"from_role": "dev", "to_role": "qa", "summary": f"h{i}",
                                                   "confidence": "high"})
    cursor = api.get(f"/tasks/{task['id']}/handoffs?limit=1").data["next_cursor"]
    response = api.get(f"/tasks/{task['id']}/proofs?cursor={cursor}")
    assert response.status_code == 400 and response.data["error"]["code"] == "invalid_cursor"


def test_keys_of_other_projects_see_nothing_and_humans_read(api, services, task):
    proof = store_proof(api, services, task["id"])
    api.post("/projects", {"id": "other", "name": "Other", "repository_url": "https://example.com/o.git"})
    other = api.as_key(api.post("/keys", {"name": "o", "principal": "agent", "project_ids": ["other"]}).data["key"])
    human = api.as_key(api.post("/keys", {"name": "h", "principal": "human", "project_ids": ["demo"]}).data["key"])
    for path in (f"/proofs/{proof['id']}", f"/proofs/{proof['id']}/download", f"/tasks/{task['id']}/proofs",
                 "/projects/demo/proofs"):
        assert other.get(path).status_code == 404, path
    assert other.post(f"/proofs/{proof['id']}/confirm").status_code == 404
    assert declare(other, task["id"]).status_code == 404
    assert human.get(f"/proofs/{proof['id']}").status_code == 200
    assert api.get("/proofs/prf_01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 404
    assert api.get("/proofs/not-an-id").status_code == 404


# --------------------------------------------------------------------------- stage requirements


def test_advance_with_pass_needs_the_stages_required_proof(api, services, claimed):
    task, claim = claimed["task"], claimed["claim"]
    body = {"claim_id": claim["claim_id"], "result": "pass"}
    refused = api.post(f"/tasks/{task['id']}/advance", body)
    assert refused.status_code == 422
    assert refused.data["error"]["code"] == "missing_proofs"
    assert "test_result" in refused.data["error"]["message"]
    assert refused.data["error"]["details"][0]["missing"] == ["test_result"]
    # declared but not confirmed does not count
    pending = declare(api, task["id"]).data["proof"]
    assert api.post(f"/tasks/{task['id']}/advance", body).status_code == 422
    put_object(services, pending["s3_key"], REPORT, "application/xml")
    assert api.post(f"/proofs/{pending['id']}/confirm").status_code == 200
    passed = api.post(f"/tasks/{task['id']}/advance", body)
    assert passed.status_code == 200, passed.data
    assert passed.data["stage"] == "complete" and passed.data["status"] == "done"


def test_a_fail_needs_no_proof_and_proofs_of_an_earlier_iteration_do_not_count(api, services, claimed):
    task, claim = claimed["task"], claimed["claim"]
    store_proof(api, services, task["id"], "test_result")
    failed = api.post(f"/tasks/{task['id']}/advance", {"claim_id": claim["claim_id"], "result": "fail"})
    assert failed.status_code == 200 and failed.data["iteration"] == 2 and failed.data["stage"] == "dev"
    dev = api.post("/queue/claim", {"stage": "dev", "agent_id": "dev-1", "project_id": "demo"}).data
    refused = api.post(f"/tasks/{task['id']}/advance", {"claim_id": dev["claim"]["claim_id"], "result": "pass"})
    assert refused.status_code == 422 and refused.data["error"]["details"][0]["missing"] == ["code_diff"]


def test_roles_without_required_proofs_pass_freely(api, project):
    assert api.call("PUT", "/roles/dev", {"prompt": "p", "required_proofs": []}).status_code == 200
    start_run(api, tasks=1, stages=["dev"], deploy_gate=False)
    dev = api.post("/queue/claim", {"stage": "dev", "agent_id": "d", "project_id": "demo"}).data
    passed = api.post(f"/tasks/{dev['task']['id']}/advance", {"claim_id": dev["claim"]["claim_id"], "result": "pass"})
    assert passed.status_code == 200 and passed.data["status"] == "done"
