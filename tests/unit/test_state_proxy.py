"""The runner's state proxy (chalicelib/agent/state_proxy.py): the agent's command reaches its task's
state and nothing else, only with the job's proxy token, and never sees the job token."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request
from typing import Any, Iterator

import pytest

from chalicelib.agent.client import ApiError, BatonClient
from chalicelib.agent.state_proxy import StateProxy, allowed

TASK = "tsk_0123456789abcdefghjkmnpqrs"
JOB_TOKEN = "bt_the-job-token-the-agent-must-never-see"


class Upstream:
    """A stand-in for the API: records what reached it and answers like the state endpoints."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                upstream.seen.append({"method": self.command, "path": self.path, "body": body,
                                      "authorization": self.headers.get("Authorization"),
                                      "claim": self.headers.get("Baton-Claim")})
                if "conflict" in self.path:
                    status, answer = 409, {"error": {"code": "version_conflict", "message": "expected 1, is 2",
                                                     "details": []}}
                else:
                    status, answer = 200, {"name": self.path.rsplit("/", 1)[-1], "version": 3}
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_PUT = do_DELETE = do_POST = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def proxy(upstream) -> Iterator[StateProxy]:
    with StateProxy(BatonClient(upstream.url, JOB_TOKEN), TASK) as running:
        yield running


def agent(proxy: StateProxy, token: str | None = None) -> BatonClient:
    return BatonClient(proxy.environment()["BATON_STATE_URL"], token or proxy.environment()["BATON_STATE_TOKEN"])


def test_the_tasks_state_requests_go_through_with_the_job_token_added(proxy, upstream):
    client = agent(proxy)
    assert client.put(f"/tasks/{TASK}/state/notes", {"value": {"done": 3}, "expected_version": 2})["version"] == 3
    assert client.get(f"/tasks/{TASK}/state/langgraph%2Fthread%2Flog%2F00001")["name"] == "langgraph%2Fthread%2Flog%2F00001"
    client.get(f"/tasks/{TASK}/state?prefix=langgraph%2F&limit=50")
    client.delete(f"/tasks/{TASK}/state/notes?expected_version=3")
    client.post(f"/tasks/{TASK}/state/big/upload", {"size": 5, "sha256": "0" * 64, "content_type": "text/plain"})
    client.post(f"/tasks/{TASK}/state/big/confirm", {})
    assert [(s["method"], s["path"]) for s in upstream.seen] == [
        ("PUT", f"/tasks/{TASK}/state/notes"), ("GET", f"/tasks/{TASK}/state/langgraph%2Fthread%2Flog%2F00001"),
        ("GET", f"/tasks/{TASK}/state?prefix=langgraph%2F&limit=50"),
        ("DELETE", f"/tasks/{TASK}/state/notes?expected_version=3"),
        ("POST", f"/tasks/{TASK}/state/big/upload"), ("POST", f"/tasks/{TASK}/state/big/confirm")]
    assert {s["authorization"] for s in upstream.seen} == {f"Bearer {JOB_TOKEN}"}
    assert json.loads(upstream.seen[0]["body"]) == {"value": {"done": 3}, "expected_version": 2}
    assert proxy.forwarded == 6 and proxy.refused == 0


def test_the_apis_errors_come_back_as_they_are(proxy, upstream):
    with pytest.raises(ApiError) as error:
        agent(proxy).put(f"/tasks/{TASK}/state/conflict", {"value": 1, "expected_version": 1})
    assert (error.value.status, error.value.code) == (409, "version_conflict")


@pytest.mark.parametrize("token", ["", "Bearer", "bs_guess", JOB_TOKEN])
def test_without_the_proxy_token_nothing_goes_through(proxy, upstream, token):
    request = urllib.request.Request(proxy.url + f"/tasks/{TASK}/state/notes", method="GET",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)  # nosec B310  # the loopback proxy
    assert error.value.code == 401
    assert upstream.seen == [] and proxy.refused == 1


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/tasks/tsk_other000000000000000000000/state/notes", 404),    # another task's state
    ("POST", f"/tasks/{TASK}/advance", 404),                             # the job's other rights
    ("POST", f"/tasks/{TASK}/handoffs", 404),
    ("GET", f"/tasks/{TASK}", 404),
    ("GET", f"/tasks/{TASK}/statements", 404),                            # only the state's own prefix
    ("GET", f"/tasks/{TASK}/state/../../runs/run_x/events", 404),        # climbing out
    ("GET", f"/tasks/{TASK}/state/%2e%2e/%2e%2e/advance", 404),
    ("GET", f"/tasks/{TASK}/state/%252e%252e/x", 404),
    ("GET", f"/tasks/{TASK}/state/a;b", 404),
    ("PUT", f"/tasks/{TASK}/state", 405),                                  # the list is read-only
    ("POST", f"/tasks/{TASK}/state/notes", 405),
    ("PATCH", f"/tasks/{TASK}/state/notes", 405),
    ("GET", f"/tasks/{TASK}/state/notes/upload", 405),
])
def test_nothing_but_the_tasks_state_goes_through(proxy, upstream, method, path, status):
    assert allowed(method, path, TASK) == status
    with pytest.raises(ApiError) as error:
        agent(proxy).request(method, path, {} if method in ("PUT", "POST", "PATCH") else None)
    assert error.value.status == status
    assert upstream.seen == []


def test_a_body_over_the_limit_is_refused_before_the_api(proxy, upstream):
    with pytest.raises(ApiError) as error:
        agent(proxy).put(f"/tasks/{TASK}/state/huge", {"value": "x" * (1024 * 1024 + 1)})
    assert (error.value.status, error.value.code) == (413, "body_too_large")
    assert upstream.seen == []


def test_the_proxy_is_gone_when_the_job_is():
    upstream = Upstream()
    try:
        with StateProxy(BatonClient(upstream.url, JOB_TOKEN), TASK) as running:
            url, token = running.url, running.token
        with pytest.raises(ApiError) as error:
            BatonClient(url, token, timeout=5).get(f"/tasks/{TASK}/state")
        assert error.value.code == "unreachable"
    finally:
        upstream.close()


def test_each_job_gets_its_own_token(upstream):
    with StateProxy(BatonClient(upstream.url, JOB_TOKEN), TASK) as one, \
            StateProxy(BatonClient(upstream.url, JOB_TOKEN), TASK) as two:
        assert one.token != two.token and one.url != two.url
        assert JOB_TOKEN not in json.dumps(one.environment())


def test_the_langgraph_saver_finds_the_proxy_in_the_jobs_environment():
    from chalicelib.agent.langgraph_saver import TaskStateSaver

    saver = TaskStateSaver.from_environment({"BATON_STATE_URL": "http://127.0.0.1:5", "BATON_STATE_TOKEN": "bs_x",
                                             "BATON_TASK_ID": TASK})
    assert (saver.client.base_url, saver.client.api_key, saver.task_id) == ("http://127.0.0.1:5", "bs_x", TASK)
