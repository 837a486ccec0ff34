"""Proofs as an agent makes them: declared through the API, uploaded, confirmed."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.support.api import Api

REPORT = b"<testsuite tests='3' failures='0'><testcase name='a'/></testsuite>\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bucket_keys(services: Any) -> list[str]:
    s3 = services.proofs.objects.client
    response = s3.list_objects_v2(Bucket=services.settings.bucket)
    return sorted(o["Key"] for o in response.get("Contents", []))


def declare(api: Api, task_id: str, proof_type: str = "test_result", data: bytes = REPORT,
            filename: str = "junit.xml", content_type: str = "application/xml", **overrides: Any):
    body = {"type": proof_type, "filename": filename, "content_type": content_type, "size": len(data),
            "sha256": sha256(data), **overrides}
    return api.post(f"/tasks/{task_id}/proofs", body)


def put_object(services: Any, key: str, data: bytes, content_type: str) -> None:
    """What an upload with the presigned POST leaves in the bucket (in-process moto serves no HTTP)."""
    services.proofs.objects.client.put_object(Bucket=services.settings.bucket, Key=key, Body=data,
                                              ContentType=content_type)


def store_proof(api: Api, services: Any, task_id: str, proof_type: str = "test_result", data: bytes = REPORT,
                filename: str = "junit.xml", content_type: str = "application/xml") -> dict[str, Any]:
    """Declare, upload and confirm a proof; the stored proof."""
    declared = declare(api, task_id, proof_type, data, filename, content_type)
    assert declared.status_code == 201, declared.data
    proof = declared.data["proof"]
    put_object(services, proof["s3_key"], data, content_type)
    confirmed = api.post(f"/proofs/{proof['id']}/confirm")
    assert confirmed.status_code == 200, confirmed.data
    return confirmed.data


def context_proof(api: Api, task_id: str, proof_id: str) -> dict[str, Any]:
    """The proof as the task's context shows it (with its download URL)."""
    response = api.get(f"/tasks/{task_id}/context")
    assert response.status_code == 200, response.data
    return next(p for p in response.data["proofs"] if p["id"] == proof_id)
