"""The OpenAPI document: served, complete, valid, and the checked-in copy is current."""

from pathlib import Path

import app as app_module
from chalicelib.api.dashboard import UI_PATHS
from chalicelib.api.openapi import render

ROOT = Path(__file__).resolve().parents[2]


def test_openapi_is_public_and_lists_every_route(api):
    response = api.as_key(None).get("/openapi.json")
    assert response.status_code == 200
    document = response.data
    assert document["openapi"] == "3.1.0"
    for path, methods in app_module.app.routes.items():
        if path in UI_PATHS:
            # the dashboard's page and assets: HTML/JS/CSS for a browser, not the JSON contract (docs/dashboard.md)
            assert path not in document["paths"]
            continue
        for method in methods:
            assert method.lower() in document["paths"].get(path, {}), f"{method} {path} is not documented"


def test_request_bodies_come_from_the_validating_models(api):
    document = api.as_key(None).get("/openapi.json").data
    run_create = document["components"]["schemas"]["RunCreate"]
    assert run_create["additionalProperties"] is False
    assert "tasks" in run_create["properties"]
    task = document["components"]["schemas"]["Task"]["properties"]
    assert "claim_id" not in task and "sfn_token" not in task   # server-held fields never leak


def test_the_checked_in_document_is_current():
    checked_in = (ROOT / "docs" / "openapi.json").read_text()
    assert checked_in == render(app_module.app), "docs/openapi.json is stale: run `make openapi`"
