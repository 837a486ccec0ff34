"""``baton webhooks ...`` and ``baton events tail`` without a server: a fake client answers from a
small world of runs and events that the test moves forward between polls."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from chalicelib.agent.client import ApiError
from chalicelib.cli.commands import events as events_command
from chalicelib.cli.main import cli

ENV = {"BATON_API_URL": "http://baton.test", "BATON_API_KEY": "bt_test", "BATON_CONFIG": None, "COLUMNS": "220"}
SECRET = "whsec_" + "s" * 43


def event(seq: int, action: str, at: str = "2026-11-30T10:00:00.000000Z") -> dict[str, Any]:
    return {"seq": seq, "at": at, "actor": "system:dispatcher", "action": action, "entity": "run:x", "data": {}}


class World:
    """Runs (newest first) with their status and events; the webhooks of project shop."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.on_poll: list[Any] = []     # called before each runs listing after the first

    def run(self, run_id: str, status: str, *actions: str) -> None:
        self.runs.insert(0, {"id": run_id, "status": status})
        self.events[run_id] = [event(i + 1, a, f"2026-11-30T10:00:{i:02d}.000000Z") for i, a in enumerate(actions)]

    def add(self, run_id: str, action: str) -> None:
        seq = len(self.events[run_id]) + 1
        self.events[run_id].append(event(seq, action, f"2026-11-30T10:01:{seq:02d}.000000Z"))

    def get(self, path: str) -> Any:
        self.requests.append(("GET", path, None))
        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/projects/shop/runs":
            listings = sum(1 for m, p, _ in self.requests if p.startswith("/projects/shop/runs"))
            if listings > 1 and self.on_poll:
                self.on_poll.pop(0)()
            return {"items": self.runs[: int(query.get("limit", 50))], "next_cursor": None}
        if parts.path.startswith("/runs/") and parts.path.endswith("/events"):
            run_id = parts.path.split("/")[2]
            after, limit = int(query.get("after", 0)), int(query.get("limit", 200))
            return {"items": [e for e in self.events[run_id] if e["seq"] > after][:limit], "next_cursor": None}
        if parts.path.startswith("/runs/"):
            return next(r for r in self.runs if r["id"] == parts.path.split("/")[2])
        if parts.path == "/projects/shop/webhooks":
            return {"items": [{"id": "whk_1", "project_id": "shop", "url": "https://hooks.example.com/b",
                               "events": ["run.*"], "format": "baton", "created_at": "2026-11-30T10:00:00.000000Z",
                               "created_by": "human:alice"}], "next_cursor": None}
        if parts.path == "/webhooks/whk_1/deliveries":
            return {"items": [{"delivery_id": "dlv_abc", "webhook_id": "whk_1", "run_id": "run_A", "event_seq": 2,
                               "action": "run.started", "status": "pending", "attempts": 3, "last_status_code": 503,
                               "next_attempt_at": "2026-11-30T10:05:00.000000Z", "created_at": "x"}],
                    "next_cursor": None}
        raise ApiError(404, "not_found", f"no fake answer for {path}")

    def post(self, path: str, body: Any = None, headers: Optional[dict[str, str]] = None) -> Any:
        self.requests.append(("POST", path, body))
        if body["url"].startswith("http://"):
            raise ApiError(400, "invalid_webhook_url", "url must be https://", [{"loc": ["url"], "msg": "https"}])
        return {"id": "whk_2", "project_id": "shop", "url": body["url"], "events": body["events"],
                "format": body.get("format", "baton"), "created_at": "2026-11-30T10:00:00.000000Z", "secret": SECRET}

    def delete(self, path: str) -> Any:
        self.requests.append(("DELETE", path, None))
        return {"id": path.rsplit("/", 1)[-1], "url": "https://hooks.example.com/b"}

    def collect(self, path: str, limit: Optional[int] = None, **params: Any) -> list[dict[str, Any]]:
        return self.get(path)["items"]


@pytest.fixture
def world(monkeypatch) -> World:
    fake = World()
    monkeypatch.setattr(sys.modules["chalicelib.cli.main"], "CliClient", lambda *args, **kwargs: fake)
    monkeypatch.setattr(events_command.time, "sleep", lambda seconds: None)
    return fake


def baton(*args: str):
    return CliRunner().invoke(cli, list(args), env=ENV)


def test_webhooks_add_sends_the_patterns_and_prints_the_secret_once(world):
    result = baton("webhooks", "add", "-p", "shop", "--url", "https://hooks.example.com/b", "-e", "run.*",
                   "-e", "approval.requested", "--slack")
    assert result.exit_code == 0, result.output
    assert world.requests == [("POST", "/projects/shop/webhooks", {
        "url": "https://hooks.example.com/b", "events": ["run.*", "approval.requested"], "format": "slack"})]
    assert result.stdout.count(SECRET) == 1 and "whk_2" in result.stdout
    assert "shown only once" in result.stderr
    as_json = baton("webhooks", "add", "-p", "shop", "--url", "https://hooks.example.com/b", "-e", "*",
                    "--secret", "my-own-secret-0123", "--json")
    assert json.loads(as_json.stdout)["secret"] == SECRET
    assert world.requests[-1][2] == {"url": "https://hooks.example.com/b", "events": ["*"],
                                     "secret": "my-own-secret-0123"}


def test_webhooks_add_refused_is_one_line_and_exit_1(world):
    result = baton("webhooks", "add", "-p", "shop", "--url", "http://hooks.example.com/b", "-e", "*")
    assert result.exit_code == 1
    assert "url must be https://" in result.stderr and "(400 invalid_webhook_url)" in result.stderr


def test_webhooks_list_remove_and_deliveries(world):
    listed = baton("webhooks", "list", "-p", "shop")
    assert listed.exit_code == 0 and "whk_1" in listed.stdout and "run.*" in listed.stdout
    removed = baton("webhooks", "remove", "whk_1")
    assert removed.exit_code == 0 and ("DELETE", "/webhooks/whk_1", None) in world.requests
    deliveries = baton("webhooks", "deliveries", "whk_1")
    assert deliveries.exit_code == 0
    assert all(word in deliveries.stdout for word in ("dlv_abc", "run_A", "run.started", "pending", "503"))


def test_tail_refuses_an_unknown_pattern_before_calling_the_api(world):
    result = baton("events", "tail", "-p", "shop", "-e", "approval.requestd")
    assert result.exit_code == 2 and "unknown event pattern" in result.output and world.requests == []


def test_tail_follows_new_events_and_new_runs_and_lets_ended_runs_go(world):
    world.run("run_OLD", "succeeded", "run.created", "run.started")
    world.run("run_A", "running", "run.created", "run.started", "task.claimed")
    world.on_poll = [
        lambda: world.add("run_A", "task.passed"),
        lambda: (world.run("run_B", "running", "run.created"), world.add("run_A", "approval.requested")),
        lambda: (world.add("run_A", "run.killed"), world.runs[1].update(status="killed")),
        lambda: world.add("run_B", "run.started"),
    ]
    result = baton("events", "tail", "-p", "shop", "--json", "--count", "5")
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["run_id"], e["seq"], e["action"]) for e in printed] == [
        ("run_A", 4, "task.passed"),
        ("run_B", 1, "run.created"), ("run_A", 5, "approval.requested"),   # one poll, in time order
        ("run_A", 6, "run.killed"),
        ("run_B", 2, "run.started")]
    # run_OLD had ended: never read; run_A, once killed and read, is not asked for any more
    assert not any("/runs/run_OLD/" in p for _, p, _ in world.requests)
    last_listing = max(i for i, (_, p, _) in enumerate(world.requests) if p.startswith("/projects/shop/runs"))
    assert not any("/runs/run_A/" in p for _, p, _ in world.requests[last_listing:])


def test_tail_from_start_and_a_filter(world):
    world.run("run_A", "running", "run.created", "run.started", "approval.requested")
    result = baton("events", "tail", "-p", "shop", "--from-start", "-e", "approval.*", "--duration", "0.1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("run_A") and "approval.requested" in lines[0]
