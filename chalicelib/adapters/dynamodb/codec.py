"""JSON-shaped Python values to DynamoDB attribute values and back (floats as Decimal, None dropped)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_SER = TypeSerializer()
_DESER = TypeDeserializer()


def to_dynamo(value: Any) -> Any:
    """What TypeSerializer accepts: floats become Decimal."""
    return json.loads(json.dumps(value), parse_float=Decimal)


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in to_dynamo(item).items() if v is not None}
    return {k: _SER.serialize(v) for k, v in clean.items()}


def plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [plain(v) for v in value]
    return value


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: plain(_DESER.deserialize(v)) for k, v in item.items()}


def attribute_value(value: Any) -> dict[str, Any]:
    return _SER.serialize(to_dynamo(value))


__all__ = ["attribute_value", "deserialize", "plain", "serialize", "to_dynamo"]
