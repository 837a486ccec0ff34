"""Fixtures: moto in-process for API/service tests; moto server mode where real threads race."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SECURITY_TOKEN", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ["BATON_TABLE"] = "baton-test"
os.environ["BATON_STAGE"] = "test"
os.environ["BATON_IDEMPOTENCY_TABLE"] = "baton-test-idempotency"
os.environ["BATON_BUCKET"] = "baton-test-proofs"
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from moto import mock_aws  # noqa: E402

from chalicelib import bootstrap  # noqa: E402
from chalicelib.config import Settings  # noqa: E402
from chalicelib.local.resources import create_table  # noqa: E402


@contextmanager
def moto_services() -> Iterator[Any]:
    """In-process moto with Baton's tables and bucket, and the services wired to them."""
    with mock_aws():
        settings = Settings.from_env()
        services = bootstrap.build_services(settings)
        create_table(services.repos.client, settings.table_name)
        create_table(services.repos.client, settings.idempotency_table, logical_id="IdempotencyTable")
        bootstrap.s3_client(settings).create_bucket(Bucket=settings.bucket)
        from chalicelib.api import idempotency

        idempotency.reset()
        bootstrap.reset_services(services)
        try:
            yield services
        finally:
            bootstrap.reset_services(None)


@pytest.fixture
def aws():
    with moto_services() as services:
        yield services


def table_snapshot(services: Any) -> list[dict[str, Any]]:
    """Every item of the table in key order, through the DynamoDB API (a paginated Scan: fine in
    a test, never in a request path)."""
    client, table = services.repos.client, services.settings.table_name
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        response = client.scan(**kwargs)
        items.extend(response.get("Items", []))
        if not response.get("LastEvaluatedKey"):
            break
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def wait_for(check: Callable[[], Any], what: str, deadline_seconds: float) -> Any:
    """Poll ``check`` until it returns something truthy (returned), or fail after the deadline.
    The deadline is generous: it bounds a hang, it never decides an outcome."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def services(aws):
    return aws


class Api:
    """A thin JSON client over chalice.test.Client that carries a bearer key."""

    def __init__(self, client: Any, key: Optional[str]):
        self.client = client
        self.key = key

    def as_key(self, key: Optional[str]) -> "Api":
        return Api(self.client, key)

    def call(self, method: str, path: str, body: Any = None, *, raw: Optional[str] = None,
             headers: Optional[dict[str, str]] = None):
        all_headers = {"Content-Type": "application/json"}
        if self.key:
            all_headers["Authorization"] = f"Bearer {self.key}"
        all_headers.update(headers or {})
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = getattr(self.client.http, method.lower())(path, headers=all_headers, body=payload)
        response.data = json.loads(response.body) if response.body else None
        return response

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw):
        return self.call("POST", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw):
        return self.call("PATCH", path, body, **kw)

    def delete(self, path: str, **kw):
        return self.call("DELETE", path, **kw)


@pytest.fixture
def admin_key(services) -> str:
    return services.keys.bootstrap_admin()[1]


@pytest.fixture
def api(services, admin_key):
    from chalice.test import Client

    import app as app_module

    with Client(app_module.app) as client:
        yield Api(client, admin_key)


@pytest.fixture
def project(api) -> dict[str, Any]:
    response = api.post("/projects", {"id": "demo", "name": "Demo", "repository_url": "https://example.com/demo.git"})
    assert response.status_code == 201, response.data
    return response.data


def start_run(api: Api, project_id: str = "demo", tasks: int = 3, **fields) -> dict[str, Any]:
    body = {"title": "a run", "tasks": [{"title": f"task {i}"} for i in range(tasks)], **fields}
    response = api.post(f"/projects/{project_id}/runs", body)
    assert response.status_code == 201, response.data
    return response.data


def relax_roles(api: Api, roles: tuple[str, ...] = ("dev", "qa", "security", "docs", "cicd")) -> None:
    """Publish role versions that require no proofs, for tests about the pipeline itself."""
    for role in roles:
        current = api.get(f"/roles/{role}").data
        spec = {k: current[k] for k in ("prompt", "executor", "command", "image", "timeout_seconds",
                                        "heartbeat_seconds")}
        response = api.call("PUT", f"/roles/{role}", {**spec, "required_proofs": []})
        assert response.status_code == 200, response.data


def job_token_for(services: Any, task_id: str, *, expires_in: float = 600, lease_seconds: int = 600) -> str:
    """A live job token of ``task_id``, made the way the dispatcher and the runner make one: the
    task is claimed for a job (or its current claim is taken as the job's), a single-use launch
    code is issued for that job and redeemed for the token."""
    import secrets

    from chalicelib.domain import clock, pipeline
    from chalicelib.domain.auth import Principal
    from chalicelib.domain.enums import PrincipalKind, TaskStatus
    from chalicelib.domain.requests import ClaimRequest

    task = services.repos.tasks.get(task_id)
    if task.status != TaskStatus.in_progress or not pipeline.lease_is_live(task, clock.now_iso()):
        setup = Principal(key_id="setup", name="setup", kind=PrincipalKind.admin)
        task, _ = services.tasks.claim(setup, ClaimRequest(stage=task.stage, agent_id="job-setup", task_id=task_id,
                                                           lease_seconds=lease_seconds))
    job_id = f"job_{secrets.token_hex(6)}"
    bound = task.model_copy(update={"job_id": job_id, "dispatch_seq": task.dispatch_seq + 1,
                                    "version": task.version + 1})
    services.repos.tasks.replace(bound, task.version)
    code = services.keys.issue_launch_code(bound, job_id, claim_id=bound.claim_id,
                                           expires_at=clock.plus_seconds(clock.now_iso(), 600),
                                           token_seconds=int(expires_in))
    launch = services.keys.authenticate(f"Bearer {code}")
    return services.keys.redeem_launch_code(launch, job_id)["token"]
