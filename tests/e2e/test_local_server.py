"""The local stack's HTTP server (``local_api_server``) against a real socket: an unknown path is
a 404 in the contract's error shape that echoes nothing of the request (Chalice's own answer, a
403 "Missing Authentication Token", echoes the Authorization header)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from typing import Any, Iterator, Optional

import pytest

from chalicelib.local.api_server import local_api_server
from chalicelib.local.stack import free_port
from tests.support.aws import moto_services

SECRET = "bt_" + "s3cr3t" * 7 + "x"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, str]]:
    from chalice.config import Config

    import app as app_module

    with moto_services() as services:
        admin_key = services.keys.bootstrap_admin()[1]
        port = free_port()
        config = Config.create(chalice_stage="local", app_name="baton", lambda_timeout=60)
        dev_server = local_api_server(app_module.app, config, "127.0.0.1", port)
        thread = threading.Thread(target=dev_server.server.serve_forever, daemon=True, name="test-api")
        thread.start()
        try:
            yield port, admin_key
        finally:
            dev_server.server.shutdown()
            dev_server.server.server_close()
            thread.join(timeout=10)


def request(port: int, method: str, path: str, headers: Optional[dict[str, Any]] = None,
            body: Optional[bytes] = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None and "Content-Length" not in (headers or {}):
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def assert_contract_error(status: int, headers: dict[str, str], body: bytes, expected: int, code: str) -> None:
    assert status == expected, (status, body)
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert set(error) == {"error"} and set(error["error"]) == {"code", "message", "details"}
    assert error["error"]["code"] == code and error["error"]["details"] == []


UNKNOWN = ["/definitely-not-a-route", "/projects/demo/nope", "/runs", "/tasks/task_1/unknown/deeper",
           "/nope?cursor=" + SECRET, "/" + SECRET]


@pytest.mark.parametrize("path", UNKNOWN)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PATCH"])
def test_an_unknown_path_is_a_404_in_the_contract_shape_that_echoes_nothing(server, path, method):
    port, _ = server
    body = b'{"password": "hunter2"}' if method in ("POST", "PATCH") else None
    status, headers, answer = request(port, method, path, {"Authorization": f"Bearer {SECRET}",
                                                          "X-Api-Key": "k-hunter3", "Content-Type": "application/json"},
                                      body)
    assert_contract_error(status, headers, answer, 404, "not_found")
    assert headers["x-content-type-options"] == "nosniff"
    everything = answer + json.dumps(headers).encode()
    for leaked in (SECRET.encode(), b"hunter2", b"hunter3", b"Bearer", b"Authorization", b"Credential"):
        assert leaked not in everything, leaked
    assert "x-amzn-errortype" not in headers


def test_an_unknown_path_without_a_key_is_the_same_404(server):
    port, _ = server
    assert_contract_error(*request(port, "GET", "/definitely-not-a-route"), 404, "not_found")


def test_an_authorization_header_that_is_not_ascii_is_still_a_404(server):
    port, _ = server
    status, headers, body = request(port, "GET", "/nope", {"Authorization": "Bearer bt_\xe9\xe8".encode("latin-1")})
    assert_contract_error(status, headers, body, 404, "not_found")
    assert b"bt_" not in body


def test_known_paths_still_answer_through_the_app(server):
    port, admin_key = server
    status, _, body = request(port, "GET", "/status")
    assert status == 200 and json.loads(body)["status"]
    assert_contract_error(*request(port, "GET", "/projects"), 401, "missing_credentials")
    status, _, body = request(port, "GET", "/projects", {"Authorization": f"Bearer {admin_key}"})
    assert status == 200 and json.loads(body)["items"] == []
    assert_contract_error(*request(port, "TRACE", "/projects", {"Authorization": f"Bearer {admin_key}"}), 405,
                          "method_not_allowed")
    # a trailing slash is the same route, as on API Gateway
    status, _, _ = request(port, "GET", "/status/")
    assert status == 200


def test_a_content_length_that_is_not_a_size_is_a_400_and_a_huge_one_a_413(server):
    port, admin_key = server
    auth = {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"}
    for length in ("abc", "-1", "1e3", "9" * 40, ""):
        assert_contract_error(*request(port, "POST", "/projects", {**auth, "Content-Length": length}, b"{}"), 400,
                              "invalid_input")
    # refused before the body is read: nothing is sent after the headers
    assert_contract_error(*request(port, "POST", "/projects", {**auth, "Content-Length": str(11 * 1024 * 1024)}),
                          413, "body_too_large")


def test_the_server_keeps_serving_after_bad_requests(server):
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + SECRET.encode() + b"\r\n\r\n")
        answer = raw.recv(65536)
    assert answer.startswith(b"HTTP/1.1 404") and SECRET.encode() not in answer
    status, _, _ = request(port, "GET", "/status")
    assert status == 200
