"""The single table, as every repository uses it: consistent GetItem, paged Query (with opaque
cursors), BatchGetItem, and conditional writes, single or in one TransactWriteItems.

Repositories build their keys (``keyspace``) and items; this module knows nothing of entities.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from ..pagination import decode_cursor, encode_cursor
from .codec import attribute_value, deserialize, serialize

TRANSACTION_LIMIT = 100
BATCH_GET_LIMIT = 100
KEY_NAMES = frozenset({"pk", "sk"})
GSI1_NAMES = frozenset({"pk", "sk", "gsi1pk", "gsi1sk"})
GSI4_NAMES = frozenset({"pk", "sk", "gsi4pk", "gsi4sk"})


class TransactionCancelledError(Exception):
    """A transaction was cancelled; ``reasons`` holds one code per item (``"None"`` when fine)."""

    def __init__(self, reasons: list[str], items: Optional[list[Optional[dict[str, Any]]]] = None):
        super().__init__(", ".join(reasons))
        self.reasons = reasons
        self.items = items or [None] * len(reasons)   # an item as it was, where the op asked for ALL_OLD

    def failed(self, index: int) -> bool:
        return self.reasons[index] not in ("None", None, "")


@dataclass
class Page:
    """One page of a list: the items and the cursor of the next page (None on the last)."""

    items: list[Any]
    next_cursor: Optional[str]


class Table:
    """The table's client and name, and the few operations every repository is made of."""

    def __init__(self, client: Any, name: str):
        self.client = client
        self.name = name

    # ---- reads

    def get(self, key: dict[str, str]) -> Optional[dict[str, Any]]:
        response = self.client.get_item(TableName=self.name, Key=serialize(key), ConsistentRead=True)
        item = response.get("Item")
        return deserialize(item) if item else None

    def batch_get(self, item_keys: list[dict[str, str]]) -> list[dict[str, Any]]:
        """One BatchGetItem (more only past 100 keys, or when DynamoDB leaves some unprocessed)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(item_keys), BATCH_GET_LIMIT):
            request: Optional[dict[str, Any]] = {self.name: {
                "Keys": [serialize(k) for k in item_keys[start:start + BATCH_GET_LIMIT]], "ConsistentRead": True}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                found.extend(deserialize(i) for i in response["Responses"].get(self.name, []))
                request = response.get("UnprocessedKeys") or None
        return found

    def query(self, *, partition: str, index: Optional[str] = None, partition_name: str = "pk", limit: int,
              forward: bool = True, sort_key: str = "sk", sort_between: Optional[tuple[str, str]] = None,
              sort_begins_with: Optional[str] = None, sort_equals: Optional[str] = None) -> list[dict[str, Any]]:
        """One page of a key-range Query (no cursor), with at most one condition on the sort key."""
        expression = f"{partition_name} = :p"
        values: dict[str, Any] = {":p": attribute_value(partition)}
        if sort_between:
            expression += f" AND {sort_key} BETWEEN :from AND :to"
            values.update({":from": attribute_value(sort_between[0]), ":to": attribute_value(sort_between[1])})
        elif sort_begins_with:
            expression += f" AND begins_with({sort_key}, :prefix)"
            values[":prefix"] = attribute_value(sort_begins_with)
        elif sort_equals:
            expression += f" AND {sort_key} = :s"
            values[":s"] = attribute_value(sort_equals)
        kwargs: dict[str, Any] = {"TableName": self.name, "KeyConditionExpression": expression,
                                  "ExpressionAttributeValues": values, "ScanIndexForward": forward, "Limit": limit}
        if index:
            kwargs["IndexName"] = index
        else:
            kwargs["ConsistentRead"] = True
        return [deserialize(i) for i in self.client.query(**kwargs).get("Items", [])]

    def query_page(self, *, index: Optional[str], partition_name: str, partition: str,
                   limit: int, cursor: Optional[str], forward: bool = True,
                   sort_condition: Optional[tuple[str, str, Any]] = None,
                   filters: Optional[dict[str, Any]] = None,
                   names: frozenset[str] = KEY_NAMES) -> tuple[list[dict[str, Any]], Optional[str]]:
        """A page of a Query with an opaque cursor (checked to belong to this list); ``filters`` are
        equality filters, and a filtered page is read on until it is full or the list ends."""
        start = decode_cursor(cursor, expected={partition_name: partition}, names=names)
        expression = "#p = :p"
        values: dict[str, Any] = {":p": attribute_value(partition)}
        attr_names = {"#p": partition_name}
        if sort_condition:
            sort_name, operator, value = sort_condition
            attr_names["#s"] = sort_name
            expression += " AND begins_with(#s, :s)" if operator == "begins_with" else f" AND #s {operator} :s"
            values[":s"] = attribute_value(value)
        kwargs: dict[str, Any] = {"TableName": self.name, "KeyConditionExpression": expression,
                                  "ScanIndexForward": forward, "Limit": limit}
        if index:
            kwargs["IndexName"] = index
        else:
            kwargs["ConsistentRead"] = True
        if filters:
            clauses = []
            for i, (name, value) in enumerate(filters.items()):
                attr_names[f"#f{i}"] = name
                values[f":f{i}"] = attribute_value(value)
                clauses.append(f"#f{i} = :f{i}")
            kwargs["FilterExpression"] = " AND ".join(clauses)
        kwargs["ExpressionAttributeNames"] = attr_names
        kwargs["ExpressionAttributeValues"] = values
        if start:
            kwargs["ExclusiveStartKey"] = serialize(start)
        items: list[dict[str, Any]] = []
        while True:
            response = self.client.query(**kwargs)
            items.extend(deserialize(i) for i in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last or len(items) >= limit or not filters:
                break
            kwargs["ExclusiveStartKey"] = last
            kwargs["Limit"] = limit - len(items)
        if len(items) > limit:
            items = items[:limit]
            return items, encode_cursor({n: items[-1][n] for n in names})
        return items, encode_cursor(deserialize(last) if last else None)

    def pages(self, list_page: Any, cursor: Optional[str] = None, page_size: int = 200) -> Iterable[Any]:
        """Every item of a paged list: ``list_page(limit, cursor)`` returns a ``Page``."""
        while True:
            page = list_page(page_size, cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # ---- writes

    def put_op(self, item: dict[str, Any], condition: Optional[str] = None,
               values: Optional[dict[str, Any]] = None, names: Optional[dict[str, str]] = None) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.name, "Item": serialize(item)}
        if condition:
            put["ConditionExpression"] = condition
        if values:
            put["ExpressionAttributeValues"] = {k: attribute_value(v) for k, v in values.items()}
        if names:
            put["ExpressionAttributeNames"] = names
        return {"Put": put}

    def update_op(self, key: dict[str, str], expression: str, *, condition: Optional[str] = None,
                  values: Optional[dict[str, Any]] = None, names: Optional[dict[str, str]] = None) -> dict[str, Any]:
        update: dict[str, Any] = {"TableName": self.name, "Key": serialize(key), "UpdateExpression": expression}
        if condition:
            update["ConditionExpression"] = condition
        if values:
            update["ExpressionAttributeValues"] = {k: attribute_value(v) for k, v in values.items()}
        if names:
            update["ExpressionAttributeNames"] = names
        return {"Update": update}

    def check_op(self, key: dict[str, str], condition: str) -> dict[str, Any]:
        """A ConditionCheck in a transaction: the transaction happens only if ``condition`` holds on ``key``."""
        return {"ConditionCheck": {"TableName": self.name, "Key": serialize(key), "ConditionExpression": condition}}

    def transact(self, operations: list[dict[str, Any]]) -> None:
        try:
            self.client.transact_write_items(TransactItems=operations, ClientRequestToken=str(uuid.uuid4()))
        except self.client.exceptions.TransactionCanceledException as error:
            cancellation = error.response.get("CancellationReasons", [])
            reasons = [r.get("Code", "None") for r in cancellation]
            items = [deserialize(r["Item"]) if r.get("Item") else None for r in cancellation]
            raise TransactionCancelledError(reasons or ["Unknown"] * len(operations), items or None) from None

    def write(self, operation: dict[str, Any]) -> bool:
        """One conditional Put or Update on its own; False when its condition failed."""
        (kind, params), = operation.items()
        call = self.client.put_item if kind == "Put" else self.client.update_item
        try:
            call(**params)
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def delete(self, key: dict[str, str]) -> None:
        self.client.delete_item(TableName=self.name, Key=serialize(key))


__all__ = ["BATCH_GET_LIMIT", "GSI1_NAMES", "GSI4_NAMES", "KEY_NAMES", "Page", "Table", "TRANSACTION_LIMIT",
           "TransactionCancelledError"]
