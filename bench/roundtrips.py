"""Print the AWS calls each endpoint makes: one representative request per endpoint, against moto
in-process, counted with a botocore event hook on every client the services hold.

    .venv/bin/python bench/roundtrips.py

The API key lookup of the auth middleware is counted with its request (column "auth"). Any Scan
is flagged: the store promises only GetItem/Query reads, so the script exits with status 2 then.
Counts only: moto's timings say nothing about DynamoDB's.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                    "BATON_TABLE": "baton-bench", "BATON_STAGE": "bench", "BATON_ORCHESTRATION": "plain",
                    "POWERTOOLS_LOG_LEVEL": "ERROR"}.items():
    os.environ.setdefault(name, value)
os.environ.pop("AWS_ENDPOINT_URL", None)     # moto in-process intercepts; never a real endpoint


def botocore_clients(root: Any, depth: int = 3) -> Iterator[Any]:
    """Every botocore client reachable from ``root`` (the services and what they hold)."""
    seen: set[int] = set()

    def walk(value: Any, level: int) -> Iterator[Any]:
        if id(value) in seen or level < 0 or isinstance(value, (str, bytes, int, float, bool, type(None))):
            return
        seen.add(id(value))
        meta = getattr(value, "meta", None)
        if meta is not None and hasattr(meta, "events") and hasattr(meta, "service_model"):
            yield value
            return
        children = value.values() if isinstance(value, dict) else (
            value if isinstance(value, (list, tuple, set)) else getattr(value, "__dict__", {}).values())
        for child in list(children):
            yield from walk(child, level - 1)

    yield from walk(root, depth)


class CallCounter:
    """Counts ``before-call`` events per operation; ``phase`` labels the calls made meanwhile."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.auth_calls: Counter = Counter()
        self.in_auth = threading.local()

    def hook(self, event_name: str, model: Any = None, **_: Any) -> None:
        service = event_name.split(".")[1]
        name = model.name if model is not None else event_name.rsplit(".", 1)[-1]
        label = name if service == "dynamodb" else f"{service}:{name}"
        self.calls[label] += 1
        if getattr(self.in_auth, "on", False):
            self.auth_calls[label] += 1

    def reset(self) -> None:
        self.calls.clear()
        self.auth_calls.clear()


def fmt(counts: Counter) -> str:
    return ", ".join(f"{name}×{n}" for name, n in sorted(counts.items())) or "–"


def main() -> int:
    from chalice.test import Client
    from moto import mock_aws

    from chalicelib import bootstrap
    from chalicelib.config import Settings
    from chalicelib.local.resources import create_table

    rows: list[tuple[str, int, Counter, Counter]] = []
    with mock_aws():
        settings = Settings.from_env()
        services = bootstrap.build_services(settings)
        create_table(services.store.client, settings.table_name)
        bootstrap.reset_services(services)
        counter = CallCounter()
        clients = list(botocore_clients(services))
        for client in clients:
            client.meta.events.register("before-call", counter.hook)
        authenticate = services.keys.authenticate

        def counted_authenticate(*args: Any, **kwargs: Any) -> Any:
            counter.in_auth.on = True
            try:
                return authenticate(*args, **kwargs)
            finally:
                counter.in_auth.on = False

        services.keys.authenticate = counted_authenticate  # type: ignore[method-assign]
        admin_key = services.keys.bootstrap_admin()[1]

        import app as app_module

        with Client(app_module.app) as http:
            def call(label: str, method: str, path: str, body: Any = None, key: Optional[str] = admin_key,
                     expect: int = 200, record: bool = True) -> Any:
                headers = {"Content-Type": "application/json"}
                if key:
                    headers["Authorization"] = f"Bearer {key}"
                counter.reset()
                response = getattr(http.http, method.lower())(path, headers=headers,
                                                              body=json.dumps(body) if body is not None else None)
                data = json.loads(response.body) if response.body else None
                if response.status_code != expect:
                    raise SystemExit(f"{label}: expected {expect}, got {response.status_code}: {data}")
                if record:
                    rows.append((label, response.status_code, Counter(counter.calls), Counter(counter.auth_calls)))
                return data

            # Warm-up, not measured: the first read of the role configs writes their defaults.
            call("warm-up", "GET", "/roles", record=False)

            call("GET /status", "GET", "/status", key=None)
            agent = call("POST /keys", "POST", "/keys", {"name": "agent-1", "principal": "agent",
                                                         "project_ids": ["demo"]}, expect=201)
            call("GET /keys", "GET", "/keys")
            call("POST /projects", "POST", "/projects", {"id": "demo", "name": "Demo",
                                                         "repository_url": "https://example.com/demo.git"},
                 expect=201)
            call("GET /projects", "GET", "/projects")
            call("GET /projects/{id}", "GET", "/projects/demo")
            call("PATCH /projects/{id}", "PATCH", "/projects/demo", {"name": "Demo project"})
            run = call("POST /projects/{id}/runs (3 tasks)", "POST", "/projects/demo/runs",
                       {"title": "bench", "deploy_gate": False, "tasks": [{"title": f"task {i}"} for i in range(3)]},
                       expect=201)
            run_id = run["id"]
            call("GET /projects/{id}/runs", "GET", "/projects/demo/runs")
            call("GET /runs/{id}", "GET", f"/runs/{run_id}")
            call("GET /runs/{id}/progress", "GET", f"/runs/{run_id}/progress")
            tasks = call("GET /runs/{id}/tasks", "GET", f"/runs/{run_id}/tasks")["items"]
            call("POST /runs/{id}/tasks", "POST", f"/runs/{run_id}/tasks", {"title": "one more"}, expect=201)
            call("GET /runs/{id}/events", "GET", f"/runs/{run_id}/events")
            claimed = call("POST /queue/claim", "POST", "/queue/claim",
                           {"stage": "dev", "agent_id": "agent-1", "project_id": "demo"}, key=agent["key"])
            task_id, claim_id = claimed["task"]["id"], claimed["claim"]["claim_id"]
            call("POST /tasks/{id}/heartbeat", "POST", f"/tasks/{task_id}/heartbeat", {"claim_id": claim_id},
                 key=agent["key"])
            call("POST /tasks/{id}/advance (fail: back to dev)", "POST", f"/tasks/{task_id}/advance",
                 {"claim_id": claim_id, "result": "fail", "notes": "tests fail"}, key=agent["key"])
            other = next(t["id"] for t in tasks if t["id"] != task_id)
            call("POST /tasks/{id}/stage", "POST", f"/tasks/{other}/stage", {"stage": "docs", "reason": "bench"})
            call("GET /tasks/{id}", "GET", f"/tasks/{other}")
            docs = call("POST /queue/claim (docs)", "POST", "/queue/claim",
                        {"stage": "docs", "agent_id": "agent-1", "project_id": "demo"}, key=agent["key"])
            call("POST /tasks/{id}/advance (pass: last stage, no proof required)", "POST",
                 f"/tasks/{docs['task']['id']}/advance", {"claim_id": docs["claim"]["claim_id"], "result": "pass"},
                 key=agent["key"])
            call("DELETE /keys/{id}", "DELETE", f"/keys/{agent['id']}")
            call("DELETE /runs/{id} (kill, 3 open tasks)", "DELETE", f"/runs/{run_id}")
        bootstrap.reset_services(None)

    print(f"AWS calls per request (moto in-process; clients hooked: "
          f"{', '.join(sorted(c.meta.service_model.service_name for c in clients))})\n")
    print("| endpoint | HTTP status | AWS calls | total | of which auth |")
    print("|---|---|---|---|---|")
    scans = []
    for label, status, calls, auth in rows:
        flag = ""
        if any(name.endswith("Scan") for name in calls):
            scans.append(label)
            flag = " **⚠ SCAN**"
        print(f"| {label} | {status} | {fmt(calls)}{flag} | {sum(calls.values())} | {fmt(auth)} |")
    print(f"\n{len(rows)} requests, {sum(sum(c.values()) for _, _, c, _ in rows)} AWS calls in all.")
    if scans:
        print("\n" + "!" * 72 + f"\n!! SCAN in: {', '.join(scans)}\n!! The store must read with GetItem/Query "
              "only; a Scan reads the whole table.\n" + "!" * 72)
        return 2
    print("No Scan anywhere.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
