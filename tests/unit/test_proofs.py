"""Proof rules without AWS: size limits and their settings, which proofs a stage still needs, and
the object keys the server builds."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.config import Settings
from chalicelib.domain.proofs import MB


def test_size_limits_are_configurable(monkeypatch):
    from chalicelib.services.proofs import ProofService

    monkeypatch.setenv("BATON_PROOF_SIZE_LIMITS", "default=1048576,screenshot=2048")
    settings = Settings.from_env()
    assert settings.proof_size_limits == {"default": MB, "screenshot": 2048}
    from chalicelib.domain.proofs import size_limit

    assert size_limit("screenshot", settings.proof_size_limits) == 2048
    assert size_limit("log", settings.proof_size_limits) == MB
    assert size_limit("log", {}) == 50 * MB
    with pytest.raises(ValueError):
        ProofService(None, None, None, None, None, size_limits={"videos": 1})
    monkeypatch.setenv("BATON_PROOF_SIZE_LIMITS", "screenshot=lots")
    with pytest.raises(ValueError):
        Settings.from_env()


def test_missing_proofs_counts_only_stored_proofs_of_this_stage_and_iteration_made_here():
    from chalicelib.domain.proofs import Proof, missing_proofs


    def proof(**fields: Any) -> Proof:
        base = dict(id="prf_1", task_id="t", run_id="r", project_id="p", stage="qa", iteration=2, type="test_result",
                    filename="f", content_type="text/plain", size=1, sha256="0" * 64, s3_key="k", status="stored",
                    uploaded_by="a", created_at="2026-01-01T00:00:00.000000Z")
        return Proof(**{**base, **fields})


    required = ["test_result", "log"]
    assert missing_proofs(required, [proof()], stage="qa", iteration=2) == ["log"]
    assert missing_proofs(required, [proof(), proof(type="log")], stage="qa", iteration=2) == []
    for other in (proof(status="pending"), proof(iteration=1), proof(stage="dev"), proof(attached_from="prf_0")):
        assert missing_proofs(["test_result"], [other], stage="qa", iteration=2) == ["test_result"]


def test_object_keys_are_built_by_the_server_and_readable():
    from chalicelib.domain.proofs import proof_object_key


    assert proof_object_key(project_id="shop", run_id="run_1", task_id="task_2", stage="qa", iteration=3,
                            proof_type="screenshot", proof_id="prf_9", filename="cart.png") == \
        "projects/shop/runs/run_1/tasks/task_2/qa-3/screenshot/prf_9-cart.png"
    for bad in ("../x", "a/b", "a\\b", "a\x00b", ""):
        with pytest.raises(ValueError):
            proof_object_key(project_id="shop", run_id="r", task_id="t", stage="qa", iteration=1,
                             proof_type="log", proof_id="p", filename=bad)
