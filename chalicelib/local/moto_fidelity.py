"""Make moto's DynamoDB transactions atomic under threads, and linear in their size.

moto 5.2.5's ``DynamoDBBackend.transact_write_items`` has two problems that are moto's, not Baton's:

1. **Cost.** Before applying a transaction it deep-copies the whole table once *per item of the
   transaction* (the copies overwrite each other; only one is ever used). A 100-item transaction
   on a table of 1,000 items copies 100,000 items: starting a run of 1,000 tasks took 55-90 s.
2. **Isolation.** A failed transaction rolls back by putting that whole-table copy back, and
   nothing serializes requests in server mode (``ThreadedMotoServer`` handles each request in its
   own thread). A transaction that fails therefore erases every write other threads committed
   while it ran (lost updates: 20 threads claiming 40 tasks produced 45 "successful" claims and a
   negative ``queued`` counter), and the copy itself can fail with "dictionary changed size during
   iteration".

``atomic_transactions()`` fixes both while it is active: every DynamoDB request moto handles runs
under one lock (so requests are linearizable, as DynamoDB guarantees for conditional writes and
transactions), and a transaction snapshots only the items it touches and restores exactly those
if it fails. Under the lock that is equivalent to moto's whole-table restore: nothing else can
change while the transaction runs. ``tests/service/test_moto_fidelity.py`` checks the rollback.

``patched_moto()`` is what the local stack, the tests and the bench run moto with: these atomic
transactions, ``moto_queries.indexed_queries()`` (a Query reads its partition, not the table) and
``key_pairs_on_first_use()`` (a KMS key's RSA pair made when first used).
"""

from __future__ import annotations

import copy
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import moto.dynamodb.models as ddb_models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

_LOCK = threading.RLock()


class _NoTableCopies:
    """Stands in for the ``copy`` module inside moto's backend while a transaction runs: a Table
    is "copied" as itself (its touched items are snapshotted instead); everything else is copied."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def _key_of(table: Table, op_type: str, op: dict[str, Any]) -> tuple[DynamoType, Any]:
    attrs = op["Item"] if op_type == "Put" else op["Key"]
    hash_key = DynamoType(attrs[table.hash_key_attr])
    range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
    return hash_key, range_key


def _current(table: Table, hash_key: DynamoType, range_key: Any) -> Any:
    if range_key is None:
        return table.items.get(hash_key)
    return table.items.get(hash_key, {}).get(range_key)


def _restore(table: Table, hash_key: DynamoType, range_key: Any, item: Any) -> None:
    from .moto_queries import written

    _put_back(table, hash_key, range_key, item)
    written(table, hash_key, range_key)   # the item changed behind moto's back: re-index it


def _put_back(table: Table, hash_key: DynamoType, range_key: Any, item: Any) -> None:
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
        return
    partition = table.items.get(hash_key)
    if item is None:
        if partition is not None:
            partition.pop(range_key, None)
            if not partition:
                table.items.pop(hash_key, None)
    else:
        table.items[hash_key][range_key] = item


@contextmanager
def atomic_transactions() -> Iterator[None]:
    original_transact = ddb_models.DynamoDBBackend.transact_write_items
    original_call_action = DynamoHandler.call_action

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with _LOCK:
            try:
                snapshots = []
                for entry in transact_items:
                    op_type, op = next(iter(entry.items()))
                    table = self.tables[op["TableName"]]
                    hash_key, range_key = _key_of(table, op_type, op)
                    snapshots.append((table, hash_key, range_key,
                                      copy.deepcopy(_current(table, hash_key, range_key))))
            except Exception:
                # A request moto will refuse anyway (unknown table, missing key): let moto answer it.
                return original_transact(self, transact_items)
            ddb_models.copy = _NoTableCopies()
            try:
                return original_transact(self, transact_items)
            except BaseException:
                for table, hash_key, range_key, item in reversed(snapshots):
                    _restore(table, hash_key, range_key, item)
                raise
            finally:
                ddb_models.copy = copy

    def call_action(self: Any) -> Any:
        with _LOCK:
            return original_call_action(self)

    ddb_models.DynamoDBBackend.transact_write_items = transact_write_items
    DynamoHandler.call_action = call_action
    try:
        yield
    finally:
        ddb_models.DynamoDBBackend.transact_write_items = original_transact
        DynamoHandler.call_action = original_call_action


class _KeyPairOnFirstUse:
    """Stands in for the key pair moto makes for every KMS key: made when first used."""

    def __init__(self, make: Any, key_spec: str) -> None:
        self._make, self._key_spec, self._made = make, key_spec, None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name.startswith("_made"):
            raise AttributeError(name)
        if self._made is None:
            self._made = self._make(self._key_spec)
        return getattr(self._made, name)


@contextmanager
def key_pairs_on_first_use() -> Iterator[None]:
    """moto makes an RSA-2048 key pair for every KMS key, even a symmetric one, whose pair only an
    asymmetric operation (Sign, Verify, GetPublicKey) reads: ~40 ms of every table or bucket created
    with SSE-KMS (every test of the service and API tiers makes two). While active, the pair is made
    on first use instead; nothing else changes."""
    import moto.kms.models as kms_models

    original = kms_models.generate_private_key
    kms_models.generate_private_key = lambda key_spec: _KeyPairOnFirstUse(original, key_spec)
    try:
        yield
    finally:
        kms_models.generate_private_key = original


@contextmanager
def patched_moto() -> Iterator[None]:
    """What the local stack and the tests run moto with: atomic transactions, indexed queries
    (``moto_queries``) and KMS key pairs made on first use."""
    from .moto_queries import indexed_queries

    with atomic_transactions(), indexed_queries(), key_pairs_on_first_use():
        yield
