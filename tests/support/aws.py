"""In-process moto with Baton's tables and bucket and the services wired to them (the service and
API tiers), and two reads of the whole table for "changed nothing" checks.

moto runs as the local stack runs it (``chalicelib.local.moto_fidelity.patched_moto``): its
transactions atomic and linear (moto as shipped deep-copies the whole table once per item of every
transaction, which made a module that grows its table, the authorization matrix or a thousand-task
run, spend most of its time copying), its queries reading only their partition, its answers
serialized directly. The answers are moto's own (``tests/service/test_moto_fidelity.py``)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import pytest
from moto import mock_aws

from chalicelib import bootstrap
from chalicelib.config import Settings
from chalicelib.local.moto_fidelity import patched_moto
from chalicelib.local.resources import create_table


@contextmanager
def moto_services() -> Iterator[Any]:
    """In-process moto with Baton's tables and bucket, and the services wired to them."""
    with mock_aws(), patched_moto():
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


@pytest.fixture
def services(aws):
    return aws


@pytest.fixture
def admin_key(services) -> str:
    return services.keys.bootstrap_admin()[1]


def scan_table(services: Any, table: str) -> list[dict[str, Any]]:
    """Every item of ``table`` (a paginated Scan: fine in a test, never in a request path)."""
    client = services.repos.client
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        response = client.scan(**kwargs)
        items.extend(response.get("Items", []))
        if not response.get("LastEvaluatedKey"):
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def table_snapshot(services: Any) -> list[dict[str, Any]]:
    """Every item of the table in key order, through the DynamoDB API (a paginated Scan: fine in
    a test, never in a request path)."""
    items = scan_table(services, services.settings.table_name)
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def backend_snapshot(services: Any) -> list[dict[str, Any]]:
    """The same items as ``table_snapshot``, read from moto's in-memory table.

    moto's response serializer makes a Scan of a small table cost ~150 ms, which over hundreds of
    cases (two snapshots each) would be most of a module's time; reading the backend is ~1 ms.
    ``tests/api/test_api_bad_input.py::test_snapshot_sees_what_a_scan_sees`` proves the two agree.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][services.settings.region].get_table(services.settings.table_name)
    items = [{name: value.to_regular_json() for name, value in item.attrs.items()} for item in table.all_items()]
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
