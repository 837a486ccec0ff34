"""What Baton asks of AWS, counted in-process with botocore event hooks.

``AwsMeter.install()`` hooks every botocore client created afterwards in this process (Baton's
services, powertools' idempotency layers, moto's Step Functions interpreter, the local stack's
pump); ``watch(client)`` hooks one that exists already. Each call becomes a ``Call``: service,
operation, the scope it was made in (``with meter.scope("api", "POST /queue/claim")``, or the
thread's name), its error code and botocore's retry count, and for DynamoDB the items it read and
the request units it would be billed on AWS (``DynamoUnits``, worked out from the items' sizes in
moto's in-process backend: moto's own ConsumedCapacity figures are constants).

``LambdaMeter`` is a Chalice middleware put in front of the app's own: one ``Invocation`` per
Lambda invocation the local stack makes (HTTP requests to ``api_handler``, SQS batches to
``dispatch``), with the thread CPU time it took (moto answers in other threads, so that is
Baton's and botocore's own work) and the AWS calls made inside it.

Counts only: moto's timings say nothing about AWS's.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional

import botocore.session

MOTO_ACCOUNT = "123456789012"


@dataclass
class Call:
    """One AWS call: what, in which scope (an invocation, "auth", or the thread's name), and how it went."""

    service: str
    operation: str
    scope: str
    detail: str = ""
    retries: int = 0
    error: str = ""
    items_read: int = 0
    rru: float = 0.0
    wru: float = 0.0
    target: str = ""          # for DynamoDB: which items (key prefixes, index), e.g. "GetItem RUN#/META"
    wru_by_item: Counter = field(default_factory=Counter)   # "RUN#/META" → its WRU (GSI writes as "… gsi1")
    reasons: tuple[str, ...] = ()   # a cancelled transaction's reason per item ("None", "ConditionalCheckFailed", …)
    events: int = 0           # events:PutEvents: the events EventBridge bills (each accepted entry, per 64 KB)

    @property
    def label(self) -> str:
        """``GetItem`` for DynamoDB (the table's own vocabulary), ``sqs:SendMessage`` otherwise."""
        return self.operation if self.service == "dynamodb" else f"{self.service}:{self.operation}"


@dataclass
class Scope:
    label: str
    detail: str = ""
    calls: list[Call] = field(default_factory=list)


class AwsMeter:
    def __init__(self, dynamo_units: bool = True):
        self.calls: list[Call] = []
        self.units = DynamoUnits() if dynamo_units else None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._restore: Optional[Any] = None
        self.presigned: Counter = Counter()   # URLs/forms handed out: each is one S3 request by their holder

    # ---- hooking clients

    def install(self) -> "AwsMeter":
        original = botocore.session.Session.create_client
        meter = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            return meter.watch(original(session, *args, **kwargs))

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
        self._restore = original
        return self

    def uninstall(self) -> None:
        if self._restore is not None:
            botocore.session.Session.create_client = self._restore  # type: ignore[method-assign]
            self._restore = None

    def watch(self, client: Any) -> Any:
        if getattr(client, "_bench_meter", None) is self:
            return client
        client._bench_meter = self
        client.meta.events.register("before-parameter-build", self._before)
        client.meta.events.register("after-call", self._after)
        if client.meta.service_model.service_name == "s3":
            self._count_presigning(client)
        return client

    def _count_presigning(self, client: Any) -> None:
        url, post = client.generate_presigned_url, client.generate_presigned_post

        def presigned_url(client_method: str, *args: Any, **kwargs: Any) -> Any:
            self.presigned[client_method] += 1
            return url(client_method, *args, **kwargs)

        def presigned_post(*args: Any, **kwargs: Any) -> Any:
            self.presigned["post_object"] += 1
            return post(*args, **kwargs)

        client.generate_presigned_url = presigned_url
        client.generate_presigned_post = presigned_post

    # ---- scopes

    @contextmanager
    def scope(self, label: str, detail: str = "") -> Iterator[Scope]:
        stack = self._stack()
        current = Scope(label, detail)
        stack.append(current)
        try:
            yield current
        finally:
            stack.pop()

    def _stack(self) -> list[Scope]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    # ---- the hooks

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        service = model.service_model.service_name
        before = None
        if self.units is not None and service == "dynamodb":
            before = self.units.before(model.name, params)
        context["bench"] = (dict(params), before)

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any],
               **_: Any) -> None:
        service = model.service_model.service_name
        params, before = context.get("bench", ({}, None))
        stack = self._stack()
        scope = stack[-1] if stack else None
        call = Call(service=service, operation=model.name,
                    scope=scope.label if scope else threading.current_thread().name,
                    detail=scope.detail if scope else "",
                    error=(parsed.get("Error") or {}).get("Code", "") if isinstance(parsed, dict) else "",
                    retries=int(((parsed or {}).get("ResponseMetadata") or {}).get("RetryAttempts", 0)))
        if call.error == "TransactionCanceledException":
            call.reasons = tuple(r.get("Code", "") for r in (parsed or {}).get("CancellationReasons") or [])
        if service == "sqs" and model.name == "ReceiveMessage":
            call.items_read = len((parsed or {}).get("Messages") or [])
        if service == "events" and model.name == "PutEvents" and not call.error:
            call.events = billed_events(params.get("Entries") or [], (parsed or {}).get("Entries") or [])
        if service == "dynamodb":
            call.target = describe(model.name, params)
            call.items_read = items_read(model.name, parsed or {})
            if self.units is not None and not call.error.endswith("ValidationException"):
                call.rru, call.wru = self.units.after(model.name, params, parsed or {}, before, failed=bool(call.error),
                                                      breakdown=call.wru_by_item)
        with self._lock:
            self.calls.append(call)
        for open_scope in stack:
            open_scope.calls.append(call)

    # ---- reading the record

    def take(self) -> list[Call]:
        """The calls recorded so far, forgetting them."""
        with self._lock:
            calls, self.calls = self.calls, []
        return calls


def billed_events(entries: list[dict[str, Any]], results: list[dict[str, Any]]) -> int:
    """What a PutEvents is billed: each entry EventBridge accepted, one event per 64 KB of it."""
    billed = 0
    for index, entry in enumerate(entries):
        if index < len(results) and results[index].get("ErrorCode"):
            continue
        size = sum(len(str(entry.get(name, "")).encode()) for name in ("Source", "DetailType", "Detail"))
        billed += max(1, math.ceil(size / (64 * 1024)))
    return billed


def items_read(operation: str, parsed: dict[str, Any]) -> int:
    """Items DynamoDB read to answer (a Query's ScannedCount, not only what its filter kept)."""
    if operation in ("Query", "Scan"):
        return int(parsed.get("ScannedCount", parsed.get("Count", 0)))
    if operation == "GetItem":
        return 1 if parsed.get("Item") else 0
    if operation == "BatchGetItem":
        return sum(len(items) for items in (parsed.get("Responses") or {}).values())
    if operation == "TransactGetItems":
        return sum(1 for r in parsed.get("Responses") or [] if r.get("Item"))
    return 0


def _prefix(value: Any) -> str:
    text = value.get("S", "") if isinstance(value, dict) else str(value)
    head, sep, _ = text.partition("#")
    return head + sep if sep else (text if len(text) <= 12 else text[:12] + "…")


def _key(attrs: dict[str, Any]) -> str:
    return "/".join(_prefix(attrs[name]) for name in ("pk", "sk") if name in attrs)


def describe(operation: str, params: dict[str, Any]) -> str:
    """Which items a DynamoDB call touches, by key prefix: ``RUN#/META``, ``gsi4 QUEUE#``."""
    if operation in ("GetItem", "UpdateItem", "DeleteItem"):
        return _key(params.get("Key", {}))
    if operation == "PutItem":
        return _key(params.get("Item", {}))
    if operation in ("Query", "Scan"):
        values = params.get("ExpressionAttributeValues") or {}
        first = next(iter(values.values()), None)
        return f"{params.get('IndexName', 'table')} {_prefix(first) if first else ''}".strip()
    if operation == "BatchGetItem":
        return " + ".join(_key(k) for r in params.get("RequestItems", {}).values() for k in r.get("Keys", []))
    if operation == "TransactWriteItems":
        parts = []
        for entry in params.get("TransactItems", []):
            kind, op = next(iter(entry.items()))
            parts.append(f"{kind} {_key(op.get('Item') or op.get('Key') or {})}")
        return " + ".join(parts)
    return ""


def summarize(calls: Iterable[Call]) -> Counter:
    return Counter(call.label for call in calls)


def fmt_calls(counts: Counter) -> str:
    return ", ".join(f"{name}×{n}" for name, n in sorted(counts.items())) or "–"


# --------------------------------------------------------------------------- DynamoDB request units

class DynamoUnits:
    """Request units a DynamoDB call would be billed on demand, from moto's in-process items.

    The rules (DynamoDB developer guide, "Read/write capacity mode"): a write is 1 WRU per KB of
    the larger of the item before and after (2 in a transaction, ConditionCheck included); each
    global secondary index the item is (or was) in costs 1 WRU per KB more (2 when its key
    changes: a delete and a put); a failed conditional write is still billed. An eventually
    consistent read is 0.5 RRU per 4 KB (a Query sums its items before rounding), a strongly
    consistent one 1, a transactional one 2. Sizes are moto's (attribute names + values).
    """

    def _table(self, name: str) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        for region in ("us-east-1",):
            backend = dynamodb_backends[MOTO_ACCOUNT][region]
            if name in backend.tables:
                return backend.tables[name]
        return None

    @staticmethod
    def _item(table: Any, key: dict[str, Any]) -> Any:
        from moto.dynamodb.models.dynamo_type import DynamoType

        try:
            hash_key = DynamoType(key[table.hash_key_attr])
            if not table.range_key_attr:
                return table.items.get(hash_key)
            return table.items.get(hash_key, {}).get(DynamoType(key[table.range_key_attr]))
        except (KeyError, TypeError):
            return None

    def _writes(self, operation: str, params: dict[str, Any]) -> list[tuple[Any, dict[str, Any], int]]:
        """(table, key, multiplier) of each item a write request touches."""
        out: list[tuple[Any, dict[str, Any], int]] = []

        def add(table_name: str, attrs: dict[str, Any], multiplier: int) -> None:
            table = self._table(table_name)
            if table is not None:
                names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
                out.append((table, {n: attrs[n] for n in names if n in attrs}, multiplier))

        if operation == "PutItem":
            add(params["TableName"], params.get("Item", {}), 1)
        elif operation in ("UpdateItem", "DeleteItem"):
            add(params["TableName"], params.get("Key", {}), 1)
        elif operation == "TransactWriteItems":
            for entry in params.get("TransactItems", []):
                kind, op = next(iter(entry.items()))
                add(op["TableName"], op.get("Item") if kind == "Put" else op.get("Key", {}), 2)
        elif operation == "BatchWriteItem":
            for table_name, requests in params.get("RequestItems", {}).items():
                for request in requests:
                    if "PutRequest" in request:
                        add(table_name, request["PutRequest"]["Item"], 1)
                    else:
                        add(table_name, request["DeleteRequest"]["Key"], 1)
        return out

    def before(self, operation: str, params: dict[str, Any]) -> Any:
        writes = self._writes(operation, params)
        return [(table, key, mult, self._snapshot(self._item(table, key))) for table, key, mult in writes]

    @staticmethod
    def _snapshot(item: Any) -> Optional[tuple[int, dict[str, Any]]]:
        if item is None:
            return None
        return item.size(), {name: value.value for name, value in item.attrs.items()}

    def after(self, operation: str, params: dict[str, Any], parsed: dict[str, Any], before: Any,
              failed: bool, breakdown: Optional[Counter] = None) -> tuple[float, float]:
        if before:
            return 0.0, self._write_units(before, failed, breakdown if breakdown is not None else Counter())
        return self._read_units(operation, params, parsed), 0.0

    def _write_units(self, before: Any, failed: bool, breakdown: Counter) -> float:
        for table, key, multiplier, old in before:
            new = self._snapshot(self._item(table, key))
            largest = max(old[0] if old else 0, new[0] if new else 0)
            name = _key(key) if table.name.startswith("baton") and not table.name.endswith("idempotency") \
                else f"{table.name.rsplit('-', 1)[-1]} table"
            breakdown[name] += multiplier * max(1, math.ceil(largest / 1024))
            if failed:
                continue
            for index in getattr(table, "global_indexes", []):
                names = index.schema_key_attrs
                old_key = tuple(old[1].get(n) for n in names) if old else None
                new_key = tuple(new[1].get(n) for n in names) if new else None
                old_in = old_key is not None and None not in old_key
                new_in = new_key is not None and None not in new_key
                units = 0
                if old_in and new_in and old_key != new_key:
                    units = math.ceil(old[0] / 1024) + math.ceil(new[0] / 1024)
                elif new_in:
                    units = max(1, math.ceil(new[0] / 1024))
                elif old_in:
                    units = max(1, math.ceil(old[0] / 1024))
                if units:
                    breakdown[f"{name} {index.name}"] += units
        return float(sum(breakdown.values()))

    def _read_units(self, operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> float:
        def per_4kb(size: int, factor: float) -> float:
            return factor * max(1, math.ceil(size / 4096))

        def size_of(table: Any, key: dict[str, Any]) -> int:
            item = self._item(table, key) if table is not None else None
            return item.size() if item is not None else 0

        if operation == "GetItem":
            factor = 1.0 if params.get("ConsistentRead") else 0.5
            return per_4kb(size_of(self._table(params["TableName"]), params["Key"]), factor)
        if operation == "BatchGetItem":
            total = 0.0
            for table_name, request in params.get("RequestItems", {}).items():
                table = self._table(table_name)
                factor = 1.0 if request.get("ConsistentRead") else 0.5
                total += sum(per_4kb(size_of(table, key), factor) for key in request.get("Keys", []))
            return total
        if operation == "TransactGetItems":
            return sum(per_4kb(size_of(self._table(g["Get"]["TableName"]), g["Get"]["Key"]), 2.0)
                       for g in params.get("TransactItems", []))
        if operation in ("Query", "Scan"):
            table = self._table(params["TableName"])
            factor = 1.0 if params.get("ConsistentRead") and "IndexName" not in params else 0.5
            size = 0
            for item in parsed.get("Items", []):
                found = self._item(table, item) if table is not None else None
                size += found.size() if found is not None else sum(len(k) + len(str(v)) for k, v in item.items())
            return per_4kb(size, factor)
        return 0.0


# --------------------------------------------------------------------------- Lambda invocations

@dataclass
class Invocation:
    function: str
    what: str
    cpu_ms: float
    wall_ms: float
    calls: list[Call]
    phase: str = ""       # the ``X-Bench-Phase`` header a bench driver labels its own requests with


class LambdaMeter:
    """A Chalice middleware (put first, so it wraps the app's own) recording each invocation."""

    def __init__(self, meter: AwsMeter):
        self.meter = meter
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()

    def install(self, app: Any) -> None:
        # Outermost: the auth middleware's key lookup happens inside this one.
        app.middleware_handlers.insert(0, (self.middleware, "all"))

    def middleware(self, event: Any, get_response: Any) -> Any:
        from chalice.app import Request

        phase = ""
        if isinstance(event, Request):
            function, what = "api_handler", f"{event.method} {event.context.get('resourcePath', event.path)}"
            phase = (event.headers or {}).get("x-bench-phase", "")
        else:   # the table's stream invokes the publish function; the queues, dispatch (and webhooks)
            what = type(event).__name__
            function = "publish" if what == "DynamoDBEvent" else "dispatch"
        cpu, wall = time.thread_time(), time.perf_counter()
        with self.meter.scope(function, what) as scope:
            try:
                return get_response(event)
            finally:
                invocation = Invocation(function, what, (time.thread_time() - cpu) * 1000,
                                        (time.perf_counter() - wall) * 1000, list(scope.calls), phase)
                with self._lock:
                    self.invocations.append(invocation)

    def take(self) -> list[Invocation]:
        with self._lock:
            taken, self.invocations = self.invocations, []
        return taken
