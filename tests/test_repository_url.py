"""Repository URLs of projects: what an agent will ``git clone`` must not be an option, carry a
secret, or (on a deployed stage) reach the machine's own disk."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from chalicelib.domain.repository_url import allows_local, check_repository_url
from tests.conftest import Api, moto_services, table_snapshot

GOOD = ["https://github.com/org/repo.git", "https://git.example.com:8443/team/repo",
        "ssh://git@github.com/org/repo.git", "ssh://git@host.example.com:2222/srv/repo.git",
        "ssh://host.example.com/repo.git", "git@github.com:org/repo.git", "deploy_bot@gitlab.example.com:group/sub/repo.git"]
LOCAL = ["/srv/demo.git", "file:///tmp/repo/e2e.git"]

# (url, what the message must say)
BAD = [("http://example.com/r.git", "http://"), ("git://example.com/r.git", "git://"), ("ftp://x/r", "must be"),
       ("example.com/r.git", "must be"), ("ext::sh -c touch% /tmp/pwned", "spaces"), ("ext::ssh", "must be"),
       ("relative/path.git", "must be"), ("github.com:org/repo.git", "must be"),
       ("-oProxyCommand=calc", "start with '-'"), ("--upload-pack=touch", "start with '-'"),
       ("ssh://-oProxyCommand=touch/r.git", "host"), ("git@-oProxyCommand=x:r.git", "host"),
       ("ssh://-l@host/r.git", "user"), ("-l@host:r.git", "start with '-'"), ("git@host:-r.git", "path"),
       ("https://user:ghp_secret@github.com/org/repo.git", "credential helper"),
       ("https://ghp_secret@github.com/org/repo.git", "credential helper"),
       ("https://x-access-token:tok@github.com/org/repo.git", "credential helper"),
       ("ssh://git:password@host/r.git", "credential helper"), ("git:password@host:r.git", "credential helper"),
       ("https://exa mple.com/r.git", "spaces"), ("https://example.com/r.git\n", "control"),
       ("https://example.com/r.git\t", "control"), ("https://example.com/r\x00.git", "control"),
       ("https://example.com/%0a/r.git", "control"), ("https://example.com/r\u202e.git", "control"),
       ("https://example.com", "path"), ("https://", "host"), ("https://example.com:port/r", "not a valid URL"),
       ("file://host/srv/r.git", "absolute path"), ("https://example.com/" + "r" * 2048, "2048"), ("", "must be")]


@pytest.mark.parametrize("url", GOOD + LOCAL)
def test_allowed_urls(url):
    assert check_repository_url(url) == url


@pytest.mark.parametrize("url", GOOD)
def test_remote_urls_are_allowed_on_every_stage(url):
    assert check_repository_url(url, allow_local=False) == url


@pytest.mark.parametrize("url,said", BAD)
def test_refused_urls_say_why(url, said):
    with pytest.raises(ValueError) as refused:
        check_repository_url(url)
    assert said in str(refused.value), str(refused.value)


@pytest.mark.parametrize("url", LOCAL)
def test_local_repositories_only_on_the_local_and_test_stages(url):
    assert allows_local("local") and allows_local("test")
    for stage in ("dev", "prod", "api", "", None):
        assert not allows_local(stage)
    with pytest.raises(ValueError) as refused:
        check_repository_url(url, allow_local=False)
    assert "local and test stages" in str(refused.value)


# --------------------------------------------------------------------------- through the API


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
    assert api.post("/projects", {"id": "remote", "name": "R", "repository_url": GOOD[0]}).status_code == 201
    before = table_snapshot(services)
    for url in LOCAL:
        error = assert_error(api.post("/projects", {"id": "local", "name": "L", "repository_url": url}), 400,
                             "invalid_repository_url")
        assert "local and test stages" in error["message"] and error["details"][0]["loc"] == ["repository_url"]
        assert_error(api.patch("/projects/remote", {"repository_url": url}), 400, "invalid_repository_url")
    assert table_snapshot(services) == before
    assert api.patch("/projects/remote", {"repository_url": GOOD[5]}).data["repository_url"] == GOOD[5]
