"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every POST (headers
and raw body) and answers 2xx, or fails the first ``fail_first`` requests with ``fail_status``."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Optional

from chalicelib.domain.webhooks import verify


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def verifies(self, secret: str) -> bool:
        return verify(secret, self.body, self.headers.get("Baton-Signature", ""))


class Receiver:
    def __init__(self, fail_first: int = 0, fail_status: int = 500):
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:   # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    status = receiver.fail_status if len(receiver.requests) < receiver.fail_first else 204
                    receiver.requests.append(Received(self.path, {k: v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="webhook-receiver")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def delivered(self) -> list[Received]:
        """The requests it answered with a 2xx, in arrival order."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.answered < 300]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def receiving(fail_first: int = 0, fail_status: int = 500) -> Iterator[Receiver]:
    with Receiver(fail_first, fail_status) as receiver:
        yield receiver


def seqs(requests: list[Received], run_id: Optional[str] = None) -> list[int]:
    return [r.json["seq"] for r in requests if run_id is None or r.json.get("run_id") == run_id]
