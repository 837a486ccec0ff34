"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every POST (headers
and raw body) and answers 2xx, or fails the first ``fail_first`` requests with ``fail_status``.
With ``hold_first`` (an Event), the first request gets no answer until the event is set: a receiver
that hangs, which the sender gives up on after its timeout."""

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
    answered: Optional[int]   # None while it is held

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def verifies(self, secret: str) -> bool:
        return verify(secret, self.body, self.headers.get("Baton-Signature", ""))


class Receiver:
    def __init__(self, fail_first: int = 0, fail_status: int = 500, hold_first: Optional[threading.Event] = None):
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.hold_first = hold_first
        self.holding = threading.Event()   # the first request arrived and has no answer yet
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:   # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received = Received(self.path, {k: v for k, v in self.headers.items()}, body, None)
                with receiver._lock:   # recorded in arrival order; the answer is decided by it
                    index = len(receiver.requests)
                    receiver.requests.append(received)
                if index == 0 and receiver.hold_first is not None:
                    receiver.holding.set()
                    receiver.hold_first.wait(300)
                    receiver.holding.clear()
                received.answered = receiver.fail_status if index < receiver.fail_first else 204
                try:
                    self.send_response(received.answered)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:   # the sender gave up waiting (a held request)
                    pass

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
            return [r for r in self.requests if r.answered is not None and 200 <= r.answered < 300]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.hold_first is not None:
            self.hold_first.set()
        self.server.shutdown()
        self.server.server_close()


def receiving(fail_first: int = 0, fail_status: int = 500) -> Iterator[Receiver]:
    with Receiver(fail_first, fail_status) as receiver:
        yield receiver


def seqs(requests: list[Received], run_id: Optional[str] = None) -> list[int]:
    return [r.json["seq"] for r in requests if run_id is None or r.json.get("run_id") == run_id]
