"""Repository URLs of projects, the rule alone: what an agent will ``git clone`` must not be an
option, carry a secret, or (on a deployed stage) reach the machine's own disk. Through the API:
``tests/api/test_repository_url.py``."""

from __future__ import annotations

import pytest

from chalicelib.domain.repository_url import allows_local, check_repository_url

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
