"""Hygiene: keys, claims and presigned URLs never reach the logs. (bandit over the Lambda code:
``tests/infra/test_bandit.py``.)"""

from __future__ import annotations

import hashlib
import io
import logging

from chalicelib.observability import logger as structured
from tests.support.api import relax_roles, start_run


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
