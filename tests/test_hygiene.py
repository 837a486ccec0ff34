"""Hygiene: bandit finds nothing in the Lambda code, and secrets never reach the logs."""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
from pathlib import Path

from chalicelib.observability import logger as structured
from tests.conftest import relax_roles, start_run

ROOT = Path(__file__).resolve().parents[1]


def test_bandit_is_clean_on_app_and_chalicelib():
    bandit = Path(sys.executable).with_name("bandit")
    completed = subprocess.run([str(bandit), "-q", "-r", "app.py", "chalicelib", "-x", "chalicelib/demo/sample",
                                "-f", "custom", "--msg-template", "{relpath}:{line} {test_id} {msg}"],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
    findings = [line for line in completed.stdout.splitlines() if line.strip()]
    assert completed.returncode == 0 and not findings, "\n".join(findings)


def test_keys_claims_and_presigned_urls_never_reach_the_logs(api, project, services):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    watched = [logging.getLogger(name) for name in ("baton", "baton.api", "baton.outbox", "baton.dispatch")]
    levels = [w.level for w in watched]
    for w in watched:
        w.addHandler(handler)
        w.setLevel(logging.DEBUG)
    structured.setLevel("DEBUG")
    try:
        relax_roles(api)
        created = api.post("/keys", {"name": "agent", "principal": "agent", "project_ids": ["demo"]}).data
        agent = api.as_key(created["key"])
        start_run(api, tasks=1, stages=["dev"])
        claimed = agent.post("/queue/claim", {"stage": "dev", "agent_id": "a1", "project_id": "demo"}).data
        task_id, claim_id = claimed["task"]["id"], claimed["claim"]["claim_id"]
        agent.post(f"/tasks/{task_id}/heartbeat", {"claim_id": claim_id})
        data = b"log line\n"
        upload = agent.post(f"/tasks/{task_id}/proofs", {
            "type": "log", "filename": "run.log", "content_type": "text/plain", "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}, headers={"Baton-Claim": claim_id}).data
        agent.post(f"/tasks/{task_id}/advance", {"claim_id": claim_id, "result": "fail", "notes": "n"})
        api.as_key("bt_not-a-real-key-but-shaped-like-one").get("/projects")
    finally:
        for w, level in zip(watched, levels):
            w.removeHandler(handler)
            w.setLevel(level)
        structured.setLevel("WARNING")
    logged = stream.getvalue()
    assert "request" in logged                     # the request lines were captured
    secrets = [api.key, created["key"], claim_id, "bt_not-a-real-key-but-shaped-like-one",
               upload["upload"]["fields"].get("policy", "x" * 40), upload["upload"]["url"] + "?"]
    for secret in secrets:
        assert secret not in logged
    assert "X-Amz-Signature" not in logged and "x-amz-signature" not in logged
