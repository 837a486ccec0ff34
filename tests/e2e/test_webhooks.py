"""Events out on the local stack: a run's every event reaches a webhook receiver (a real HTTP server
on 127.0.0.1) in ``seq`` order, signed; a receiver that hangs on its first delivery and fails the
next two still gets every event once the retries pass, while the run itself completes without
waiting for it; ``baton webhooks`` and ``baton events tail`` drive and watch it from the terminal.

The agents are external (the test claims and advances through the API); the deliveries go through
the webhook FIFO queue, its pump and the app's ``webhooks`` handler, as Lambda runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chalicelib.agent.client import BatonClient
from chalicelib.cli import cli
from tests.support.receiver import Receiver, seqs
from tests.support.waiting import wait_for

PROJECT = "e2e-hooks"
ROOT = Path(__file__).resolve().parents[2]
FLAKY_SECRET = "flaky-receiver-secret-0123456789"


def external(role: str) -> dict[str, Any]:
    return {"prompt": f"external {role}", "executor": "external", "required_proofs": [], "timeout_seconds": 600,
            "heartbeat_seconds": 300}


@pytest.fixture(scope="module")
def people(stack) -> dict[str, BatonClient]:
    admin = BatonClient(stack.api_url, stack.admin_key)
    for role in ("dev", "cicd"):
        admin.put(f"/roles/{role}", external(role))
    admin.post("/projects", {"id": PROJECT, "name": "Hooks", "repository_url": "https://example.com/hooks.git"})
    made = {"admin": admin}
    for name, kind in (("hook-keeper", "human"), ("hook-agent", "agent")):
        made[name] = BatonClient(stack.api_url, admin.post("/keys", {"name": name, "principal": kind,
                                                                     "project_ids": [PROJECT]})["key"])
    return made


def baton(stack, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--api-url", stack.api_url, "--api-key", stack.admin_key, *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, (args, result.output)
    return json.loads(result.stdout) if "--json" in args else result.stdout


def work(agent: BatonClient, run_id: str, stage: str) -> None:
    """Claim the next task of ``stage`` in the run (once dispatched) and pass it."""
    claimed = wait_for(lambda: agent.post("/queue/claim", {"stage": stage, "agent_id": "hook-agent",
                                                           "run_id": run_id}) or None, f"a {stage} task", 60)
    agent.post(f"/tasks/{claimed['task']['id']}/advance", {"claim_id": claimed["claim"]["claim_id"], "result": "pass"})


def test_receivers_get_every_event_of_a_run_in_order_signed_and_a_failing_one_does_not_hold_the_run(stack, people):
    admin, human, agent = people["admin"], people["hook-keeper"], people["hook-agent"]
    run_done = threading.Event()
    with Receiver() as steady, Receiver(fail_first=3, fail_status=503, hold_first=run_done) as flaky:
        added = baton(stack, "webhooks", "add", "--project", PROJECT, "--url", steady.url, "--event", "*", "--json")
        steady_secret = added["secret"]
        flaky_hook = human.post(f"/projects/{PROJECT}/webhooks", {"url": flaky.url, "events": ["run.*", "task.*",
                                                                  "tasks.*", "job.*", "approval.*"],
                                                                  "secret": FLAKY_SECRET})
        listed = baton(stack, "webhooks", "list", "--project", PROJECT, "--json")
        assert {h["id"] for h in listed} == {added["id"], flaky_hook["id"]} and all("secret" not in h for h in listed)
        tail = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.cli", "events", "tail", "--project", PROJECT, "--event",
             "approval.requested", "--count", "1", "--interval", "0.3", "--json"], cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "BATON_API_URL": stack.api_url, "BATON_API_KEY": stack.admin_key})
        try:
            run = admin.post(f"/projects/{PROJECT}/runs", {"title": "hooked", "stages": ["dev"], "parallelism": 2,
                                                           "tasks": [{"title": "one"}, {"title": "two"}]})
            run_id = run["id"]
            work(agent, run_id, "dev")
            work(agent, run_id, "dev")
            wait_for(lambda: admin.get(f"/runs/{run_id}")["status"] == "awaiting_approval", "the deploy gate", 60)
            wait_for(lambda: any(e["action"] == "approval.requested" for e in
                                 admin.get(f"/runs/{run_id}/events?limit=200")["items"]),
                     "the run execution to reach its deploy gate", 60)
            human.post(f"/runs/{run_id}/approvals/deploy", {"decision": "approve", "comment": "ship it"})
            work(agent, run_id, "cicd")
            wait_for(lambda: admin.get(f"/runs/{run_id}")["status"] == "succeeded", "the run to succeed", 60)
            # The run ended while the flaky receiver still had its first delivery in hand, unanswered:
            # nothing in the pipeline waited for it.
            assert flaky.holding.is_set() and flaky.all()[0].answered is None
        finally:
            run_done.set()
        wait_for(lambda: not flaky.holding.is_set(), "the held request to be answered", 10)
        out, err = tail.communicate(timeout=60)
        assert tail.returncode == 0, err
        [tailed] = [json.loads(line) for line in out.splitlines()]
        assert (tailed["run_id"], tailed["action"], tailed["data"]) == (run_id, "approval.requested", {"gate": "deploy"})

        events = admin.get(f"/runs/{run_id}/events?limit=200")["items"]
        assert [e["action"] for e in events][:2] == ["run.created", "run.started"]
        assert "approval.requested" in [e["action"] for e in events]
        everything = [e["seq"] for e in events]
        flaky_wanted = [e["seq"] for e in events if e["action"].split(".")[0] in ("run", "task", "tasks", "job",
                                                                                     "approval")]
        wait_for(lambda: seqs(steady.delivered()) == everything, "every event at the steady receiver", 60)
        wait_for(lambda: seqs(flaky.delivered()) == flaky_wanted, "every event at the flaky receiver", 90)

        assert seqs(steady.all()) == everything              # once each, in order, nothing retried
        assert all(r.verifies(steady_secret) for r in steady.all())
        assert all(r.verifies(FLAKY_SECRET) for r in flaky.delivered())
        assert not any(r.verifies(FLAKY_SECRET + "x") or r.verifies(steady_secret) for r in flaky.delivered())
        assert [r.json["seq"] for r in flaky.all()][:4] == [1, 1, 1, 1]   # the first event, until it went through
        assert [r.answered for r in flaky.all()][:4] == [503, 503, 503, 204]
        assert seqs(flaky.all()[3:]) == flaky_wanted         # then each once, in order
        by_seq = {e["seq"]: e for e in events}
        for request in steady.all():
            body = request.json
            assert request.headers["Baton-Event"] == body["action"] == by_seq[body["seq"]]["action"]
            assert request.headers["Baton-Delivery"] == body["delivery_id"]
            assert (body["run_id"], body["project_id"], body["data"]) == (run_id, PROJECT, by_seq[body["seq"]]["data"])

        deliveries = baton(stack, "webhooks", "deliveries", flaky_hook["id"], "--json")
        assert sorted(d["event_seq"] for d in deliveries) == flaky_wanted
        assert {d["status"] for d in deliveries} == {"delivered"}
        first = next(d for d in deliveries if d["event_seq"] == 1)
        assert (first["attempts"], first["last_status_code"]) == (4, 204)
        assert all(d["attempts"] == 1 for d in deliveries if d["event_seq"] != 1)
        removed = baton(stack, "webhooks", "remove", added["id"], "--json")
        assert removed["id"] == added["id"]
