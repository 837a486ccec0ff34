"""The task's state, lent to the agent's command for the length of one job.

The command gets no Baton credential (see :mod:`.runner`): not the job token, not an agent key. But
an agent that keeps its own progress — a LangGraph graph and its checkpoints
(:mod:`.langgraph_saver`), a script that remembers which files it already migrated — needs the
task's state, under the job's live claim. The runner lends it through this proxy: a small HTTP
server on 127.0.0.1 (inside the job's container on AWS) that

* answers only requests carrying the job's proxy token (``BATON_STATE_TOKEN``, random per job,
  compared in constant time) — any other process of the machine that finds the port gets 401;
* forwards only the state endpoints of this job's task (``/tasks/{task_id}/state``, ``…/state/{name}``,
  ``…/upload``, ``…/confirm``), adding the job token itself: no other path, task or method goes
  through (404 / 405), and no path that could climb out of the state (``..``, a second ``?``);
* lives as long as the command: the runner stops it when the command ends, and the API refuses the
  job token anyway once the job's claim is over.

The command finds it at ``BATON_STATE_URL`` (e.g. ``http://127.0.0.1:41234``) and sends
``Authorization: Bearer $BATON_STATE_TOKEN`` — which is what ``BatonClient(BATON_STATE_URL,
BATON_STATE_TOKEN)`` does, and what ``TaskStateSaver.from_environment()`` builds. Values over the
API's body limit go straight to S3 through the presigned upload the API answers with (the proxy
forwards the request for it, never the bytes).
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import unquote, urlsplit

from .client import BatonClient

# A state request's body is a JSON value up to the API's inline limit (about 200 KB as compact JSON,
# more when escaped); anything larger is refused here before it costs a round trip.
MAX_BODY = 1024 * 1024
DRAIN_LIMIT = 16 * MAX_BODY
NAME_CHARACTERS = re.compile(r"[A-Za-z0-9._%/-]*")
FORWARDED_HEADERS = ("Content-Type", "Content-Length")


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()


def allowed(method: str, target: str, task_id: str) -> Optional[int]:
    """None when ``method target`` is a state request of ``task_id``; else the status to answer."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "#" in target or parts.query.count("?"):
        return 404
    prefix = f"/tasks/{task_id}/state"
    path = parts.path
    if path != prefix and not path.startswith(prefix + "/"):
        return 404
    rest = path[len(prefix):]
    if not NAME_CHARACTERS.fullmatch(rest) or any(s in (".", "..") for s in unquote(unquote(rest)).split("/")):
        return 404
    if not rest:
        return None if method == "GET" else 405
    if rest.endswith(("/upload", "/confirm")):
        return None if method == "POST" else 405
    return None if method in ("GET", "PUT", "DELETE") else 405


class StateProxy:
    """``with StateProxy(client, task_id) as proxy:`` → ``proxy.environment()`` for the command."""

    def __init__(self, client: BatonClient, task_id: str, timeout: float = 60.0):
        self.client = client
        self.task_id = task_id
        self.timeout = timeout
        self.token = "bs_" + secrets.token_urlsafe(32)
        self.forwarded = 0
        self.refused = 0
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the state proxy is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def environment(self) -> dict[str, str]:
        return {"BATON_STATE_URL": self.url, "BATON_STATE_TOKEN": self.token}

    def start(self) -> "StateProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:   # the agent's log is not ours
                return

            def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _refuse(self, status: int, code: str, message: str) -> None:
                proxy.refused += 1
                self.close_connection = True
                self._answer(status, error_body(code, message))

            def _drain(self, length: int) -> None:
                """Read (and drop) a refused body, so the client hears the answer, not a reset."""
                left = min(max(length, 0), DRAIN_LIMIT)
                while left > 0:
                    chunk = self.rfile.read(min(left, 65536))
                    if not chunk:
                        break
                    left -= len(chunk)

            def _handle(self) -> None:
                given = self.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {proxy.token}".encode()):
                    return self._refuse(401, "unauthorized", "this proxy needs the job's BATON_STATE_TOKEN")
                refusal = allowed(self.command, self.path, proxy.task_id)
                if refusal == 405:
                    return self._refuse(405, "method_not_allowed", f"{self.command} is not a state request")
                if refusal is not None:
                    return self._refuse(404, "not_found",
                                        f"this proxy serves /tasks/{proxy.task_id}/state and its names only")
                length = int(self.headers.get("Content-Length") or 0)
                if length < 0 or length > MAX_BODY:
                    self._drain(length)
                    return self._refuse(413, "body_too_large",
                                        "state values over 1 MB go through POST .../upload (a presigned S3 upload)")
                body = self.rfile.read(length) if length else None
                status, payload, content_type = proxy.forward(self.command, self.path, body,
                                                              self.headers.get("Content-Type"))
                proxy.forwarded += 1
                self._answer(status, payload, content_type)

            do_GET = do_PUT = do_DELETE = do_POST = _handle
            do_PATCH = do_HEAD = do_OPTIONS = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="state-proxy",
                                        daemon=True)
        self._thread.start()
        return self

    def forward(self, method: str, target: str, body: Optional[bytes],
                content_type: Optional[str]) -> tuple[int, bytes, str]:
        """The request, sent to the API with the job's credentials: (status, body, content type)."""
        headers = self.client.credentials(content_type or "application/json")
        request = urllib.request.Request(self.client.base_url + target, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # nosec B310  # the runner's API URL, checked by BatonClient
                return response.status, response.read(), response.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.headers.get("Content-Type", "application/json")
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            return 502, error_body("unreachable", f"the Baton API did not answer: {reason}"), "application/json"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "StateProxy":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


__all__ = ["StateProxy", "allowed"]
