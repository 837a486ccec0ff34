"""chalicelib/local/moto_queries.py changes how moto finds a Query's items and writes its answers; these
check, over random workloads, that every answer is byte for byte the one moto gives as shipped: the same
items in the same order, pages, LastEvaluatedKey, Count and ScannedCount, filters, projections, errors, on
the base table and on every kind of secondary index, whatever was put, updated, deleted, rolled back or
indexed in between."""

from __future__ import annotations

import random
from contextlib import ExitStack, nullcontext
from typing import Any, Callable

import boto3
import pytest
from moto import mock_aws

from chalicelib.local import moto_queries
from chalicelib.local.moto_fidelity import patched_moto
from chalicelib.local.resources import create_table

MAIN, NUMERIC, FLAT = "main", "numeric", "flat"
OWNERS = ["alice", "bob", "carol", "dave"]


def make_tables(client: Any) -> None:
    create_table(client, MAIN)   # Baton's own table: pk/sk and gsi1..gsi4, each with a sort key
    client.create_table(
        TableName=NUMERIC, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t}
                              for n, t in (("pk", "S"), ("n", "N"), ("owner", "S"), ("score", "N"), ("tag", "S"))],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {"IndexName": "by_owner", "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "ALL"}},
            {"IndexName": "by_score", "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"},
                                                    {"AttributeName": "score", "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["doc"]}}],
        LocalSecondaryIndexes=[
            {"IndexName": "by_tag", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                  {"AttributeName": "tag", "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    client.create_table(
        TableName=FLAT, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}, {"AttributeName": "owner", "AttributeType": "S"},
                              {"AttributeName": "at", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_owner_at", "KeySchema": [
            {"AttributeName": "owner", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}])


def random_value(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """An attribute value of any type DynamoDB has, nested up to two levels."""
    kinds = ["S", "N", "B", "SS", "NS", "BS", "NULL", "BOOL"] + (["M", "L"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "S":
        return {"S": rng.choice(["", "plain", "ünïcødé ✓", "<b>x</b>", "a" * rng.randint(1, 300)])}
    if kind == "N":
        return {"N": rng.choice(["0", "-7", "3.25", "1000000000000", str(rng.randint(-50, 50))])}
    if kind == "B":
        return {"B": bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))}
    if kind == "SS":
        return {"SS": sorted({rng.choice(["x", "y", "z", "é"]) for _ in range(rng.randint(1, 3))})}
    if kind == "NS":
        return {"NS": sorted({str(rng.randint(0, 9)) for _ in range(rng.randint(1, 3))})}
    if kind == "BS":
        return {"BS": list({bytes([rng.randrange(256)]) for _ in range(rng.randint(1, 3))})}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "M":
        return {"M": {rng.choice(["a", "b", "c", "sp ace"]): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}}
    return {"L": [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]}


class Workload:
    """A seeded sequence of writes and queries; ``answers`` records every response body (or error) as
    moto sent it, before botocore parsed it."""

    def __init__(self, client: Any, seed: int):
        self.client = client
        self.rng = random.Random(seed)
        self.answers: list[Any] = []
        client.meta.events.register("after-call.dynamodb", self._record)

    def _record(self, http_response: Any, model: Any, **_: Any) -> None:
        if model.name in ("Query", "GetItem", "BatchGetItem", "Scan"):
            self.answers.append((model.name, http_response.status_code, http_response.content))

    def attempt(self, call: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return call(**kwargs)
        except Exception as error:   # the same refusal both ways: recorded, not raised
            self.answers.append(("error", type(error).__name__, str(error)))
            return None

    # ---- writes

    def main_item(self) -> dict[str, Any]:
        rng = self.rng
        item = {"pk": {"S": f"TASK#{rng.randint(0, 40):03d}"}, "sk": {"S": rng.choice(["META", "EVENT#1", "EVENT#2"])},
                "doc": random_value(rng), "n": {"N": str(rng.randint(0, 5))}}
        for index in ("gsi1", "gsi2", "gsi3", "gsi4"):
            if rng.random() < 0.6:
                item[f"{index}pk"] = {"S": f"RUN#{rng.randint(0, 3)}#{index}"}
            if rng.random() < 0.8:
                item[f"{index}sk"] = {"S": rng.choice(["TASK#", "DONE#", "Q#"]) + f"{rng.randint(0, 30):02d}"}
        return item

    def numeric_item(self) -> dict[str, Any]:
        rng = self.rng
        item = {"pk": {"S": f"P{rng.randint(0, 5)}"}, "n": {"N": str(rng.randint(0, 30))}, "doc": random_value(rng)}
        if rng.random() < 0.8:
            item["owner"] = {"S": rng.choice(OWNERS)}
        if rng.random() < 0.7:
            item["score"] = {"N": rng.choice([str(rng.randint(-5, 20)), "2.5", "10.0"])}
        if rng.random() < 0.6:
            item["tag"] = {"S": rng.choice(["red", "green", "blue", "blue-ish"])}
        return item

    def flat_item(self) -> dict[str, Any]:
        rng = self.rng
        item = {"id": {"S": f"id{rng.randint(0, 40)}"}, "doc": random_value(rng)}
        if rng.random() < 0.8:
            item["owner"] = {"S": rng.choice(OWNERS)}
        if rng.random() < 0.8:
            item["at"] = {"S": f"2026-11-{rng.randint(1, 30):02d}"}
        return item

    def key_of(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        names = {MAIN: ("pk", "sk"), NUMERIC: ("pk", "n"), FLAT: ("id",)}[table]
        return {name: item[name] for name in names}

    def any_item(self) -> tuple[str, dict[str, Any]]:
        table = self.rng.choice([MAIN, MAIN, NUMERIC, FLAT])
        return table, {MAIN: self.main_item, NUMERIC: self.numeric_item, FLAT: self.flat_item}[table]()

    def write(self) -> None:
        rng, client = self.rng, self.client
        table, item = self.any_item()
        key = self.key_of(table, item)
        choice = rng.random()
        if choice < 0.35:
            self.attempt(client.put_item, TableName=table, Item=item)
        elif choice < 0.45:
            self.attempt(client.put_item, TableName=table, Item=item, ConditionExpression="attribute_not_exists(doc)")
        elif choice < 0.65:
            moved = {MAIN: "gsi1pk", NUMERIC: "owner", FLAT: "owner"}[table]
            sort = {MAIN: "gsi2sk", NUMERIC: "score", FLAT: "at"}[table]
            expression, values = rng.choice([   # moves the item between partitions, out of an index, within one
                ("SET #m = :v", {":v": item.get(moved, {"S": "alice"})}),
                ("REMOVE #m", {}),
                ("SET #s = :v, doc = :d", {":v": item.get(sort, {"S": "x"} if table != NUMERIC else {"N": "3"}),
                                           ":d": random_value(rng)}),
                ("ADD hits :one", {":one": {"N": "1"}}),
            ])
            kwargs: dict[str, Any] = {"TableName": table, "Key": key, "UpdateExpression": expression}
            if "#" in expression:
                kwargs["ExpressionAttributeNames"] = {"#m": moved} if "#m" in expression else {"#s": sort}
            if values:
                kwargs["ExpressionAttributeValues"] = values
            if rng.random() < 0.2:
                kwargs["ConditionExpression"] = "attribute_exists(doc)"
            self.attempt(client.update_item, **kwargs)
        elif choice < 0.75:
            self.attempt(client.delete_item, TableName=table, Key=key)
        elif choice < 0.9:
            self.transaction()
        else:
            requests, keys = [], []
            for _ in range(rng.randint(1, 6)):
                other = {MAIN: self.main_item, NUMERIC: self.numeric_item, FLAT: self.flat_item}[table]()
                if self.key_of(table, other) not in keys:   # one request per key in a batch
                    keys.append(self.key_of(table, other))
                    requests.append({"PutRequest": {"Item": other}} if rng.random() < 0.7
                                    else {"DeleteRequest": {"Key": keys[-1]}})
            self.attempt(client.batch_write_item, RequestItems={table: requests})

    def transaction(self) -> None:
        rng = self.rng
        ops, seen = [], set()
        for _ in range(rng.randint(1, 5)):
            table, item = self.any_item()
            key = self.key_of(table, item)
            marker = (table, repr(key))
            if marker in seen:
                continue
            seen.add(marker)
            kind = rng.choice(["Put", "Put", "Update", "Delete", "ConditionCheck"])
            if kind == "Put":
                ops.append({"Put": {"TableName": table, "Item": item}})
            elif kind == "Update":
                ops.append({"Update": {"TableName": table, "Key": key, "UpdateExpression": "SET doc = :d",
                                       "ExpressionAttributeValues": {":d": random_value(rng)}}})
            elif kind == "Delete":
                ops.append({"Delete": {"TableName": table, "Key": key}})
            else:   # fails when the item is missing: the whole transaction rolls back
                ops.append({"ConditionCheck": {"TableName": table, "Key": key, "ConditionExpression": "attribute_exists(doc)"}})
        self.attempt(self.client.transact_write_items, TransactItems=ops)

    # ---- reads

    def queries(self) -> None:
        rng = self.rng
        shapes = [
            (MAIN, None, "pk", lambda: {"S": f"TASK#{rng.randint(0, 40):03d}"}, "sk", lambda: {"S": rng.choice(["EVENT#", "META", "EVENT#2"])}),
            *[(MAIN, g, f"{g}pk", (lambda g=g: {"S": f"RUN#{rng.randint(0, 4)}#{g}"}), f"{g}sk",
               lambda: {"S": rng.choice(["TASK#", "DONE#", "Q#1", "TASK#15"])}) for g in ("gsi1", "gsi2", "gsi3", "gsi4")],
            (NUMERIC, None, "pk", lambda: {"S": f"P{rng.randint(0, 6)}"}, "n", lambda: {"N": str(rng.randint(0, 30))}),
            (NUMERIC, "by_owner", "owner", lambda: {"S": rng.choice(OWNERS + ["nobody"])}, None, None),
            (NUMERIC, "by_score", "owner", lambda: {"S": rng.choice(OWNERS)}, "score", lambda: {"N": str(rng.randint(-5, 20))}),
            (NUMERIC, "by_tag", "pk", lambda: {"S": f"P{rng.randint(0, 6)}"}, "tag", lambda: {"S": rng.choice(["blue", "g", "red"])}),
            (FLAT, None, "id", lambda: {"S": f"id{rng.randint(0, 41)}"}, None, None),
            (FLAT, "by_owner_at", "owner", lambda: {"S": rng.choice(OWNERS)}, "at", lambda: {"S": f"2026-11-{rng.randint(1, 30):02d}"}),
        ]
        for table, index, hash_name, hash_value, sort_name, sort_value in shapes:
            self.query(table, index, hash_name, hash_value(), sort_name, sort_value)

    def query(self, table: str, index: Any, hash_name: str, hash_value: Any, sort_name: Any, sort_value: Any) -> None:
        rng = self.rng
        expression, values = "#h = :h", {":h": hash_value}
        names = {"#h": hash_name}
        if sort_name and rng.random() < 0.6:
            names["#s"] = sort_name
            operator = rng.choice(["=", "<", "<=", ">", ">=", "between"] + (["begins_with"] if "S" in sort_value() else []))
            if operator == "between":
                low, high = sorted([sort_value(), sort_value()], key=lambda v: float(v["N"]) if "N" in v else v["S"])
                expression += " AND #s BETWEEN :a AND :b"
                values.update({":a": low, ":b": high})
            elif operator == "begins_with":
                expression += " AND begins_with(#s, :a)"
                values[":a"] = sort_value()
            else:
                expression += f" AND #s {operator} :a"
                values[":a"] = sort_value()
        kwargs: dict[str, Any] = {"TableName": table, "KeyConditionExpression": expression,
                                  "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
                                  "ScanIndexForward": rng.random() < 0.6}
        if index:
            kwargs["IndexName"] = index
        if rng.random() < 0.7:
            kwargs["Limit"] = rng.randint(1, 7)
        if rng.random() < 0.25:
            kwargs["FilterExpression"] = "attribute_exists(doc) AND NOT attribute_type(doc, :t)"
            kwargs["ExpressionAttributeValues"] = {**values, ":t": {"S": "S"}}
        if rng.random() < 0.15:
            kwargs["Select"] = "COUNT"
        elif rng.random() < 0.15 and index in (None, "by_owner", "by_owner_at") and table != MAIN:
            kwargs["ProjectionExpression"] = "doc"
        if rng.random() < 0.03:
            kwargs["ConsistentRead"] = True   # refused on a global index: the same error both ways
        for _ in range(40):
            response = self.attempt(self.client.query, **kwargs)
            if not response or "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def get_items(self) -> None:
        keys = {}
        for _ in range(4):
            table, item = self.any_item()
            keys.setdefault(table, [])
            key = self.key_of(table, item)
            if key not in keys[table]:
                keys[table].append(key)
                self.attempt(self.client.get_item, TableName=table, Key=key)
        self.attempt(self.client.batch_get_item, RequestItems={t: {"Keys": k} for t, k in keys.items()})


def run(seed: int, patched: bool, steps: int = 200) -> list[Any]:
    with ExitStack() as stack:
        stack.enter_context(mock_aws())
        stack.enter_context(patched_moto() if patched else nullcontext())
        client = boto3.client("dynamodb", region_name="us-east-1")
        make_tables(client)
        workload = Workload(client, seed)
        for step in range(steps):
            workload.write()
            if step % 20 == 19:
                workload.queries()
                workload.get_items()
            if step == steps // 2:   # an index made while the table holds items
                client.update_table(TableName=FLAT, AttributeDefinitions=[
                    {"AttributeName": "owner", "AttributeType": "S"}, {"AttributeName": "id", "AttributeType": "S"}],
                    GlobalSecondaryIndexUpdates=[{"Create": {"IndexName": "by_owner_id", "KeySchema": [
                        {"AttributeName": "owner", "KeyType": "HASH"}, {"AttributeName": "id", "KeyType": "RANGE"}],
                        "Projection": {"ProjectionType": "ALL"}}}])
            if step > steps // 2 and step % 20 == 19:
                workload.query(FLAT, "by_owner_id", "owner", {"S": workload.rng.choice(OWNERS)}, "id",
                               lambda: {"S": f"id{workload.rng.randint(0, 40)}"})
        for table in (MAIN, NUMERIC, FLAT):
            workload.attempt(client.scan, TableName=table, ConsistentRead=True)
        return workload.answers


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_answer_is_byte_for_byte_moto_s_own(seed):
    shipped, patched = run(seed, patched=False), run(seed, patched=True)
    queries = [a for a in shipped if a[0] == "Query"]
    assert len(queries) > 100 and sum(b'"LastEvaluatedKey"' in a[2] for a in queries) > 20   # the workload pages
    assert sum(b'"Count": 0' not in a[2] for a in queries) > 60                            # and finds items
    assert len(patched) == len(shipped)
    for index, (mine, theirs) in enumerate(zip(patched, shipped)):
        assert mine == theirs, f"answer {index} differs"


def test_a_query_reads_its_partition_not_the_table(monkeypatch):
    """With the patch on, neither a base-table nor an index Query walks ``all_items()``."""
    from moto.dynamodb.models.table import Table

    walks = []
    original = Table.all_items
    monkeypatch.setattr(Table, "all_items", lambda self: walks.append(self.name) or original(self))
    with mock_aws(), patched_moto():
        client = boto3.client("dynamodb", region_name="us-east-1")
        make_tables(client)
        for i in range(30):
            client.put_item(TableName=MAIN, Item={"pk": {"S": f"TASK#{i}"}, "sk": {"S": "META"},
                                                  "gsi1pk": {"S": f"RUN#{i % 3}"}, "gsi1sk": {"S": f"TASK#{i:02d}"}})
        page = client.query(TableName=MAIN, IndexName="gsi1", KeyConditionExpression="gsi1pk = :p",
                            ExpressionAttributeValues={":p": {"S": "RUN#1"}}, Limit=4)
        rest = client.query(TableName=MAIN, IndexName="gsi1", KeyConditionExpression="gsi1pk = :p",
                            ExpressionAttributeValues={":p": {"S": "RUN#1"}}, ExclusiveStartKey=page["LastEvaluatedKey"])
        one = client.query(TableName=MAIN, KeyConditionExpression="pk = :p", ConsistentRead=True,
                           ExpressionAttributeValues={":p": {"S": "TASK#7"}})
        assert walks == []
        assert [i["gsi1sk"]["S"] for i in page["Items"] + rest["Items"]] == [f"TASK#{i:02d}" for i in range(1, 30, 3)]
        assert one["Items"][0]["gsi1pk"] == {"S": "RUN#1"}
        client.scan(TableName=MAIN)
        assert walks == [MAIN]    # the Scan, as moto does it


def test_writes_made_while_it_was_off_are_seen_when_it_is_on_again():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        make_tables(client)

        def owners_items() -> list[str]:
            found = client.query(TableName=FLAT, IndexName="by_owner_at", KeyConditionExpression="#o = :o",
                                 ExpressionAttributeNames={"#o": "owner"}, ExpressionAttributeValues={":o": {"S": "bob"}})
            return [i["id"]["S"] for i in found["Items"]]

        item = {"id": {"S": "a"}, "owner": {"S": "bob"}, "at": {"S": "1"}}
        with patched_moto():
            client.put_item(TableName=FLAT, Item=item)
            assert owners_items() == ["a"]
        client.put_item(TableName=FLAT, Item={**item, "id": {"S": "b"}, "at": {"S": "0"}})
        client.update_item(TableName=FLAT, Key={"id": {"S": "a"}}, UpdateExpression="SET #o = :o",
                           ExpressionAttributeNames={"#o": "owner"}, ExpressionAttributeValues={":o": {"S": "carol"}})
        with patched_moto():
            assert owners_items() == ["b"]


def test_it_is_removed_on_exit_and_nests():
    from moto.core.serialize import BaseJSONSerializer
    from moto.dynamodb.models.table import Table

    before = (Table.query, Table.all_items, Table.put_item, BaseJSONSerializer._serialize_type_structure)
    with moto_queries.indexed_queries():
        inside = (Table.query, Table.all_items, Table.put_item, BaseJSONSerializer._serialize_type_structure)
        assert all(a is not b for a, b in zip(inside, before))
        with moto_queries.indexed_queries():
            assert (Table.query, Table.all_items, Table.put_item, BaseJSONSerializer._serialize_type_structure) == inside
        assert (Table.query, Table.all_items, Table.put_item, BaseJSONSerializer._serialize_type_structure) == inside
    assert (Table.query, Table.all_items, Table.put_item, BaseJSONSerializer._serialize_type_structure) == before
