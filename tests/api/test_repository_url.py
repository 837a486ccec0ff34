"""Repository URLs of projects through the API: refused on create and patch with nothing changed,
and local repositories only on the local and test stages. The rule alone:
``tests/unit/test_repository_url.py``."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.support.api import Api
from tests.support.aws import moto_services, table_snapshot

REMOTE = ["https://github.com/org/repo.git", "git@github.com:org/repo.git"]
LOCAL = ["/srv/demo.git", "file:///tmp/repo/e2e.git"]
API_BAD = ["https://user:token@github.com/o/r.git", "-oProxyCommand=x", "git@-oProxyCommand=x:r",
           "https://example.com/r.git\r\nX: 1", "http://example.com/r.git", "git://example.com/r.git"]


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.data
    assert set(response.data["error"]) == {"code", "message", "details"}
    assert response.data["error"]["code"] == code, response.data
    return response.data["error"]


def test_the_api_refuses_bad_urls_on_create_and_patch_and_changes_nothing(api, services, project):
    before = table_snapshot(services)
    for url in API_BAD:
        created = api.post("/projects", {"id": "fresh", "name": "F", "repository_url": url})
        error = assert_error(created, 400, "invalid_body")
        assert error["details"][0]["loc"] == ["repository_url"], error
        patched = api.patch("/projects/demo", {"repository_url": url})
        assert_error(patched, 400, "invalid_body")
    credentials = api.post("/projects", {"id": "fresh", "name": "F", "repository_url": API_BAD[0]})
    assert "credential helper" in credentials.data["error"]["details"][0]["msg"]
    assert table_snapshot(services) == before
    # the test stage takes local repositories (the tests and the local stack use them)
    for url in LOCAL:
        assert api.patch("/projects/demo", {"repository_url": url}).data["repository_url"] == url


@pytest.fixture
def deployed_api(monkeypatch) -> Iterator[tuple[Api, Any]]:
    """The API as a deployed stage (``dev``) runs it."""
    from chalice.test import Client

    import app as app_module

    monkeypatch.setenv("BATON_STAGE", "dev")
    with moto_services() as services, Client(app_module.app) as client:
        assert services.settings.stage == "dev" and services.projects.stage == "dev"
        yield Api(client, services.keys.bootstrap_admin()[1]), services


def test_a_deployed_stage_refuses_local_repositories_and_takes_remote_ones(deployed_api):
    api, services = deployed_api
    assert api.post("/projects", {"id": "remote", "name": "R", "repository_url": REMOTE[0]}).status_code == 201
    before = table_snapshot(services)
    for url in LOCAL:
        error = assert_error(api.post("/projects", {"id": "local", "name": "L", "repository_url": url}), 400,
                             "invalid_repository_url")
        assert "local and test stages" in error["message"] and error["details"][0]["loc"] == ["repository_url"]
        assert_error(api.patch("/projects/remote", {"repository_url": url}), 400, "invalid_repository_url")
    assert table_snapshot(services) == before
    assert api.patch("/projects/remote", {"repository_url": REMOTE[1]}).data["repository_url"] == REMOTE[1]
