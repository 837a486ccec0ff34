"""Proof uploads for real: multipart/form-data over HTTP to a moto server (``ThreadedMotoServer``),
then the download's 302 followed, and the headers S3 serves checked.

What moto 5.2.5 enforces of a presigned POST: nothing. It stores whatever arrives (any size, any
Content-Type field, even another key, without checking the policy, its signature or its
expiry). AWS enforces all of it; here ``confirm`` is what catches a different size, content type or
content, and it deletes the object (``test_moto_accepts_what_the_policy_forbids...``).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import urllib.error
import urllib.request
import uuid
from typing import Any, Iterator, Optional

import pytest

from chalicelib import bootstrap
from chalicelib.config import Settings
from chalicelib.local.resources import create_table
from tests.support.api import Api, start_run
from tests.support.proofs import REPORT, context_proof, declare

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
HTML = b"<html><script>alert(document.domain)</script></html>"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclasses.dataclass
class ServerWorld:
    services: Any
    url: str


@pytest.fixture(scope="module")
def moto_server() -> Iterator[ServerWorld]:
    from moto.server import ThreadedMotoServer


    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    saved = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = url       # botocore reads it when a client is created
    try:
        settings = dataclasses.replace(Settings.from_env(), table_name=f"baton-proofs-{uuid.uuid4().hex[:8]}",
                                       idempotency_table="", bucket=f"proofs-{uuid.uuid4().hex[:8]}")
        services = bootstrap.build_services(settings)
    finally:
        if saved is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = saved
    try:
        yield ServerWorld(services, url)
    finally:
        server.stop()


@pytest.fixture
def server_api(moto_server) -> Iterator[tuple[Api, Any]]:
    from chalice.test import Client


    import app as app_module


    services = moto_server.services
    assert services.repos.client.meta.endpoint_url == moto_server.url
    # (re)created per test: an in-process moto test of another module resets moto's shared backends
    create_table(services.repos.client, services.settings.table_name)
    s3 = services.proofs.objects.client
    if services.settings.bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=services.settings.bucket)
    bootstrap.reset_services(services)
    try:
        with Client(app_module.app) as client:
            api = Api(client, services.keys.bootstrap_admin()[1])
            project_id = "p-" + uuid.uuid4().hex[:8]
            assert api.post("/projects", {"id": project_id, "name": "P", "repository_url": "/srv/p.git"}
                            ).status_code == 201
            run = start_run(api, project_id, tasks=1, stages=["dev", "qa"])
            task = api.get(f"/runs/{run['id']}/tasks").data["items"][0]
            yield api, task
    finally:
        bootstrap.reset_services(None)


def multipart(fields: dict[str, str], data: bytes, filename: str) -> tuple[bytes, str]:
    boundary = "----baton" + uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(form: dict[str, Any], data: bytes, filename: str = "file", fields: Optional[dict[str, str]] = None) -> int:
    body, content_type = multipart({**form["fields"], **(fields or {})}, data, filename)
    request = urllib.request.Request(form["url"], data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def fetch_headers(url: str) -> dict[str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
        return {k.lower(): v for k, v in response.headers.items()}


def test_a_proof_uploaded_with_the_presigned_post_is_confirmed_listed_and_downloaded_byte_identical(server_api):
    api, task = server_api
    data = bytes(range(256)) * 40 + b"\x00 the end"         # binary, with NULs: byte-identical or not at all
    declared = declare(api, task["id"], "screenshot", data, "screen-1.png", "image/png")
    assert declared.status_code == 201, declared.data
    proof, form = declared.data["proof"], declared.data["upload"]
    assert upload(form, data, "screen-1.png") in (200, 201, 204)
    confirmed = api.post(f"/proofs/{proof['id']}/confirm")
    assert confirmed.status_code == 200, confirmed.data
    assert confirmed.data["status"] == "stored"
    assert [p["id"] for p in api.get(f"/tasks/{task['id']}/proofs").data["items"]] == [proof["id"]]
    assert [p["id"] for p in api.get(f"/projects/{task['project_id']}/proofs").data["items"]] == [proof["id"]]
    download = api.get(f"/proofs/{proof['id']}/download")
    assert download.status_code == 302
    assert fetch(download.headers["Location"]) == data


def test_moto_accepts_what_the_policy_forbids_so_confirm_rejects_and_deletes_it(server_api):
    api, task = server_api
    services = bootstrap.get_services()
    s3 = services.proofs.objects.client
    too_big = declare(api, task["id"]).data
    # moto stores an upload larger than content-length-range allows (AWS answers 400 EntityTooLarge)
    assert upload(too_big["upload"], REPORT * 3) in (200, 201, 204)
    assert s3.head_object(Bucket=services.settings.bucket, Key=too_big["proof"]["s3_key"])["ContentLength"] == \
        3 * len(REPORT)
    refused = api.post(f"/proofs/{too_big['proof']['id']}/confirm")
    assert refused.status_code == 422 and refused.data["error"]["code"] == "proof_mismatch"
    other_type = declare(api, task["id"], filename="b.xml").data
    # ... and one whose Content-Type field differs from the policy's exact condition (AWS: 403)
    assert upload(other_type["upload"], REPORT, fields={"Content-Type": "text/html"}) in (200, 201, 204)
    refused = api.post(f"/proofs/{other_type['proof']['id']}/confirm")
    assert refused.status_code == 422 and "content type" in refused.data["error"]["message"]
    listed = s3.list_objects_v2(Bucket=services.settings.bucket, Prefix=f"projects/{task['project_id']}/")
    assert listed.get("KeyCount", 0) == 0
    statuses = {p["id"]: p["status"] for p in api.get(f"/tasks/{task['id']}/proofs").data["items"]}
    assert statuses == {too_big["proof"]["id"]: "pending", other_type["proof"]["id"]: "pending"}


def test_s3_serves_the_forced_headers_over_http(server_api):
    api, task = server_api
    cases = [("other", HTML, "page.html", "text/html", "attachment", "text/plain; charset=utf-8"),
             ("report", b"%PDF-1.7", "r.pdf", "application/pdf", "attachment", "application/octet-stream")]
    for proof_type, data, filename, content_type, disposition, served in cases:
        declared = declare(api, task["id"], proof_type, data, filename, content_type)
        assert declared.status_code == 201, declared.data
        assert upload(declared.data["upload"], data, filename) in (200, 201, 204)
        proof = api.post(f"/proofs/{declared.data['proof']['id']}/confirm").data
        headers = fetch_headers(api.get(f"/proofs/{proof['id']}/download").headers["Location"])
        assert headers["content-type"] == served, filename
        assert headers["content-disposition"] == f'{disposition}; filename="{filename}"', filename
    declared = declare(api, task["id"], "screenshot", PNG, "home.png", "image/png")
    assert upload(declared.data["upload"], PNG, "home.png") in (200, 201, 204)
    shot = api.post(f"/proofs/{declared.data['proof']['id']}/confirm").data
    headers = fetch_headers(context_proof(api, task["id"], shot["id"])["url"])
    assert headers["content-type"] == "image/png"
    assert headers["content-disposition"] == 'inline; filename="home.png"'
