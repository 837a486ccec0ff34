"""Counting DynamoDB round trips: every call a boto3 client makes inside a block."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def dynamodb_calls(client: Any) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every DynamoDB API call the client makes inside the block: (operation, params)."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((model.name, params))

    client.meta.events.register("before-parameter-build.dynamodb", record)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb", record)


def is_authentication(call: tuple[str, dict[str, Any]]) -> bool:
    """The middleware's API-key lookup, made for every request before the route runs."""
    operation, params = call
    return operation == "GetItem" and params["Key"]["pk"]["S"].startswith("KEY#")


@contextmanager
def dynamodb_operations(client: Any) -> Iterator[list[str]]:
    """The DynamoDB operations ``client`` makes inside the block, in order."""
    calls: list[str] = []

    def count(event_name: str, **_: Any) -> None:
        calls.append(event_name.rsplit(".", 1)[-1])

    client.meta.events.register("before-call.dynamodb.*", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", count)
