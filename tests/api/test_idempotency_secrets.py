"""Secrets at rest: no key material is ever stored in clear in the idempotency table.

``POST /keys`` answers with the new key once. With an ``Idempotency-Key`` the table keeps that
answer without the key; a repeat is a 409 ``secret_shown_once`` naming the key that was issued
(never a second key, never a copy that lacks the key but looks like a success)."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.api.idempotency import SECRET_FIELDS, redact
from tests.support.aws import scan_table, table_snapshot

IDEMPOTENCY_KEY = "5b0c8f3e-2f4a-4c1e-9d7a-3e6f1a2b4c5d"
BODY = {"name": "ci", "principal": "agent", "project_ids": ["demo"]}
KEY_SHAPED = "bt_" + "A" * 43


def idempotency_items(services: Any) -> list[dict[str, Any]]:
    return scan_table(services, services.settings.idempotency_table)


def test_an_issued_key_is_never_stored_in_the_idempotency_table(api, services, project):
    headers = {"Idempotency-Key": IDEMPOTENCY_KEY}
    first = api.post("/keys", BODY, headers=headers)
    assert first.status_code == 201, first.data
    key = first.data["key"]
    assert key.startswith("bt_") and len(key) == 46
    assert api.as_key(key).get("/projects/demo").status_code == 200       # the answer's key works

    stored = idempotency_items(services)
    assert stored, "the answer was remembered (so a repeat is recognised)"
    everything = json.dumps(stored)
    assert "bt_" not in everything and key not in everything and key[3:] not in everything
    saved = json.loads(next(i["data"]["S"] for i in stored if "data" in i))
    assert json.loads(saved["body"])["key"] is None and json.loads(saved["body"])["id"] == first.data["id"]


def test_a_repeat_says_the_key_was_shown_once_and_issues_no_second_key(api, services, project):
    headers = {"Idempotency-Key": IDEMPOTENCY_KEY}
    first = api.post("/keys", BODY, headers=headers)
    keys_before = api.get("/keys?limit=200").data["items"]
    table_before = table_snapshot(services)

    again = api.post("/keys", BODY, headers=headers)
    assert again.status_code == 409, again.data
    error = again.data["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == "secret_shown_once"
    assert first.data["id"] in error["message"] and "revoke" in error["message"]
    first_response = error["details"][0]["first_response"]
    assert error["details"][0]["status"] == 201
    assert first_response["id"] == first.data["id"] and first_response["key"] is None
    assert first_response["name"] == "ci" and first_response["project_ids"] == ["demo"]
    assert b"bt_" not in again.body
    assert api.get("/keys?limit=200").data["items"] == keys_before
    assert table_snapshot(services) == table_before
    # the same Idempotency-Key with another body is still the usual conflict
    other = api.post("/keys", {**BODY, "name": "other"}, headers=headers)
    assert other.status_code == 409 and other.data["error"]["code"] == "idempotency_key_reused"
    # without the header nothing is remembered: a new key each time
    fresh = api.post("/keys", BODY)
    assert fresh.status_code == 201 and fresh.data["id"] != first.data["id"] and fresh.data["key"]


def test_answers_without_secrets_are_replayed_as_before(api, services, project):
    headers = {"Idempotency-Key": IDEMPOTENCY_KEY}
    body = {"title": "once", "tasks": [{"title": "t"}]}
    first = api.post("/projects/demo/runs", body, headers=headers)
    second = api.post("/projects/demo/runs", body, headers=headers)
    assert first.status_code == second.status_code == 201 and first.data == second.data
    assert "secret_redacted" not in json.dumps(idempotency_items(services))


def test_a_key_shaped_string_in_any_answer_is_not_stored(api, services, project):
    """A safety net for answers of routes not listed in SECRET_FIELDS (a key pasted in a title)."""
    headers = {"Idempotency-Key": IDEMPOTENCY_KEY}
    body = {"title": f"rotate {KEY_SHAPED} today", "tasks": []}
    first = api.post("/projects/demo/runs", body, headers=headers)
    assert first.status_code == 201 and KEY_SHAPED in first.data["title"]
    assert KEY_SHAPED not in json.dumps(idempotency_items(services))
    again = api.post("/projects/demo/runs", body, headers=headers)
    assert again.status_code == 409 and again.data["error"]["code"] == "secret_shown_once"
    assert again.data["error"]["details"][0]["first_response"]["id"] == first.data["id"]
    assert len(api.get("/projects/demo/runs").data["items"]) == 1


def test_redact():
    assert SECRET_FIELDS[("POST", "/keys")] == "key" and SECRET_FIELDS[("POST", "/jobs/{job_id}/token")] == "token"
    token = "bt_" + "t" * 43
    assert json.loads(redact(json.dumps({"token": token, "job_id": "job_1"}), "token")) == \
        {"token": None, "job_id": "job_1"}
    assert json.loads(redact(json.dumps({"key": "not-shaped-like-one", "id": "k"}), "key")) == {"key": None, "id": "k"}
    nested = {"items": [{"a": {"b": ["x", "bl_" + "c" * 43]}}], "n": 1}
    assert json.loads(redact(json.dumps(nested))) == {"items": [{"a": {"b": ["x", None]}}], "n": 1}
    assert redact(json.dumps({"title": "nothing secret"})) is None
    assert redact(json.dumps({"key": "projects/p/x"})) is None          # no secret field named for this route
    # identifiers that merely contain "bt_" are not secrets
    assert redact(json.dumps({"t": "debt_" + "x" * 43, "u": "bt_" + "y" * 44, "v": "bt_" + "z" * 42})) is None
    assert redact(f"not json {token}") == "null"
    assert redact("") is None
