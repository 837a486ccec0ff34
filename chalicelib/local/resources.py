"""Create the resources of ``infra/resources.yaml`` in moto (or any endpoint boto3 points at).

The cloud template is the single definition: this module reads it and issues the matching
create calls, dropping only the properties moto ignores anyway (PITR, deletion protection).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "resources.yaml"


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def table_definition(logical_id: str = "BatonTable", path: Path = TEMPLATE) -> dict[str, Any]:
    props = load_template(path)["Resources"][logical_id]["Properties"]
    return {key: props[key] for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes",
                                        "BillingMode") if key in props}


def create_table(dynamodb: Any, table_name: str, logical_id: str = "BatonTable") -> None:
    try:
        dynamodb.create_table(TableName=table_name, **table_definition(logical_id))
    except dynamodb.exceptions.ResourceInUseException:
        return
    dynamodb.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
