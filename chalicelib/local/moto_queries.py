"""moto's Query at the cost of the partition it reads, and its DynamoDB answers serialized at the cost
of their size.

moto 5.2.5 spends a request's time on two things that grow with the table or with every attribute:

1. **The walk.** ``Table.query`` starts from ``all_items()`` (every item of the table, sorted), keeps
   those whose key matches (for an index it tests every item's attributes) and sorts them again: a
   Query of one partition costs the whole table, base table and indexes alike.
2. **The serializer.** Every ``AttributeValue`` of an answer goes through moto's generic response
   serializer, which probes each of the shape's ten members (S, N, B, SS, ...) under several
   aliases: ~0.1 ms per attribute, ~0.5 s for a page of 200 tasks.

``indexed_queries()`` fixes both while it is active, leaving every decision to moto's own code:

* each table keeps its partitions (base table and every secondary index), up to date on every write
  moto makes (``Table.put_item``, ``Table.delete_item``, the backend's ``update_item``, which changes
  an item in place, and the rollback of ``moto_fidelity.atomic_transactions``); during a Query,
  ``all_items()`` answers with just the partition named, already in the order moto sorts it in. The
  rest is moto's: the sort key condition, ``ScanIndexForward``, ``ExclusiveStartKey``, ``Limit``, the
  1 MB page, the filter, the projection, ``LastEvaluatedKey``, Count and ScannedCount.
* an ``AttributeValue`` of a DynamoDB answer is written the way the generic serializer writes it,
  without the probing; any value of a shape not covered goes the generic way.

``tests/service/test_moto_fidelity.py`` compares the answers, byte for byte, with moto's own over random
workloads. Every request runs under ``moto_fidelity``'s lock (the local stack runs moto threaded).
"""

from __future__ import annotations

import copy
import threading
import weakref
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import moto.dynamodb.models as ddb_models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.core.serialize import BaseJSONSerializer
from moto.dynamodb.models.table import Table

from .moto_fidelity import _LOCK, _current

class _IndexPartitions:
    """One index's items grouped by the values of its hash key(s), each group kept in the order
    moto's Query sorts it in (refreshed lazily after a write touches the group)."""

    def __init__(self, table: Table, index: Any) -> None:
        self.schema = copy.deepcopy(index.schema)
        self.hash_attrs = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
        self.range_attrs = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
        self.sort_by = table._generate_attr_to_sort_by(*_sort_attrs(table, index, self.hash_attrs, self.range_attrs))
        self.where: dict[Any, Any] = {}          # table key -> group
        self.groups: dict[Any, dict[Any, Any]] = {}   # group -> {table key: Item}
        self.ordered: dict[Any, list[Any]] = {}  # group -> its items in moto's order
        for key, item in _table_items(table):
            self.place(key, item)

    def group_of(self, item: Any) -> Any:
        # moto's test for an item belonging to a query of this index: every hash key attribute
        # present (and equal), and for an index with a sort key, every sort key attribute present.
        attrs = item.attrs
        if any(attrs.get(a) is None for a in self.hash_attrs) or any(attrs.get(a) is None for a in self.range_attrs):
            return None
        return tuple(attrs[a] for a in self.hash_attrs)

    def place(self, key: Any, item: Any) -> None:
        old = self.where.pop(key, None)
        if old is not None:
            self.groups[old].pop(key, None)
            if not self.groups[old]:
                del self.groups[old]
            self.ordered.pop(old, None)
        group = None if item is None else self.group_of(item)
        if group is not None:
            self.where[key] = group
            self.groups.setdefault(group, {})[key] = item
            self.ordered.pop(group, None)

    def items_of(self, group: Any) -> list[Any]:
        if group not in self.ordered:
            members = self.groups.get(group, {}).values()
            self.ordered[group] = sorted(members, key=lambda x: tuple(x.attrs[a] for a in self.sort_by))
        return self.ordered[group]


def _sort_attrs(table: Table, index: Any, hash_attrs: list[str], range_attrs: list[str]) -> tuple[list, list]:
    """The hash and range attribute lists moto's ``Table.query`` sorts an index's results by."""
    from moto.dynamodb.models.table import GlobalSecondaryIndex

    hashes = hash_attrs + [table.hash_key_attr]
    if range_attrs:
        return hashes, range_attrs + [table.range_key_attr]
    if isinstance(index, GlobalSecondaryIndex) and table.range_key_attr:
        return hashes, [table.range_key_attr, table.range_key_attr]
    return hashes, [table.hash_key_attr, table.range_key_attr]


def _table_items(table: Table) -> Iterator[tuple[Any, Any]]:
    for hash_key, stored in list(table.items.items()):
        if table.range_key_attr:
            for range_key, item in list(stored.items()):
                yield (hash_key, range_key), item
        else:
            yield (hash_key, None), stored


class _TableIndex:
    """What a query needs to skip moto's walk over the whole table: the items of each partition of
    the table in key order, and each secondary index's partitions (built on first use)."""

    def __init__(self) -> None:
        self.partitions: dict[Any, list[Any]] = {}      # table hash key -> its items in range order
        self.indexes: dict[str, _IndexPartitions] = {}

    def touched(self, table: Table, hash_key: Any, range_key: Any) -> None:
        self.partitions.pop(hash_key, None)
        if not self.indexes:
            return
        item = _current(table, hash_key, range_key) if table.range_key_attr else table.items.get(hash_key)
        for partitions in self.indexes.values():
            partitions.place((hash_key, range_key if table.range_key_attr else None), item)

    def partition(self, table: Table, hash_key: Any) -> list[Any]:
        if hash_key not in self.partitions:
            stored = table.items.get(hash_key)
            if stored is None:
                found = []
            elif table.range_key_attr:
                found = sorted(stored.values(), key=lambda x: x.range_key)
            else:
                found = [stored]
            self.partitions[hash_key] = found
        return self.partitions[hash_key]

    def index(self, table: Table, name: str) -> Optional[_IndexPartitions]:
        index = next((i for i in table.all_indexes() if i.name == name), None)
        if index is None:
            self.indexes.pop(name, None)
            return None
        built = self.indexes.get(name)
        if built is None or built.schema != index.schema:
            built = self.indexes[name] = _IndexPartitions(table, index)
        return built


_INDEXES: "weakref.WeakKeyDictionary[Table, _TableIndex]" = weakref.WeakKeyDictionary()
_NARROWED = threading.local()
_ACTIVE: list[bool] = []


def written(table: Table, hash_key: Any, range_key: Any) -> None:
    found = _INDEXES.get(table)
    if found is not None:
        found.touched(table, hash_key, range_key)


def _forget(table: Table) -> None:
    _INDEXES.pop(table, None)


def _candidates(table: Table, hash_key: Any, index_name: Optional[str], hash_conditions: Any,
                range_conditions: Any) -> Optional[list[Any]]:
    """The items moto's query would keep from its walk over ``all_items()``, already in the order
    it sorts them in; None when the query is of a shape this does not narrow (moto walks then)."""
    if index_name is None:
        if hash_key is None:
            return None
        return _INDEXES.setdefault(table, _TableIndex()).partition(table, hash_key)
    if not hash_conditions or (range_conditions and len(range_conditions) > 1):
        return None
    built = _INDEXES.setdefault(table, _TableIndex()).index(table, index_name)
    conditions = dict(hash_conditions)
    if built is None or len(conditions) != len(hash_conditions) or set(conditions) != set(built.hash_attrs):
        return None
    try:
        return built.items_of(tuple(conditions[a] for a in built.hash_attrs))
    except TypeError:        # values moto itself cannot hash or order: let it walk
        return None


# ---------------------------------------------------------------- answers

_GENERIC = object()
_STRINGS = ("S", "N")
_STRING_SETS = ("SS", "NS")


def _string(value: Any) -> Any:
    # moto's JSON serializer writes a string member as str(value), except these three values.
    return value if value is None or value == {} or value == [] else str(value)


def _attribute_value(serializer: Any, value: Any) -> Any:
    """``value`` (an AttributeValue as moto's ``dynamo_to_dict`` gives it: one type key) written as
    moto's generic serializer writes it, or ``_GENERIC`` for anything else."""
    if type(value) is not dict or len(value) != 1:
        return _GENERIC
    (kind, inner), = value.items()
    written_value = _member(serializer, kind, inner)
    return _GENERIC if written_value is _GENERIC else {kind: written_value}


def _member(serializer: Any, kind: str, inner: Any) -> Any:
    if inner is None:
        return _GENERIC
    if kind in _STRINGS:
        return _string(inner)
    if kind in ("NULL", "BOOL"):
        return inner
    if kind == "B":
        return serializer._base64(inner)
    if kind in _STRING_SETS and type(inner) is list:
        return [_string(v) for v in inner]
    if kind == "BS" and type(inner) is list and all(v is not None for v in inner):
        return [serializer._base64(v) for v in inner]
    if kind == "M" and type(inner) is dict and all(inner):   # an empty name: moto writes it differently
        written_map = {name: _attribute_value(serializer, v) for name, v in inner.items()}
        return _GENERIC if any(v is _GENERIC for v in written_map.values()) else written_map
    if kind == "L" and type(inner) is list:
        written_list = [_attribute_value(serializer, v) for v in inner]
        return _GENERIC if any(v is _GENERIC for v in written_list) else written_list
    return _GENERIC


@contextmanager
def indexed_queries() -> Iterator[None]:
    """While active, a Query reads only its partition and an answer's attribute values are written
    directly (see the module's docstring)."""
    if _ACTIVE:       # already on (a fixture inside another): one set of hooks is enough
        yield
        return
    original_query = Table.query
    original_all_items = Table.all_items
    original_put = Table.put_item
    original_delete = Table.delete_item
    original_update = ddb_models.DynamoDBBackend.update_item
    original_delete_table = ddb_models.DynamoDBBackend.delete_table
    original_structure = BaseJSONSerializer._serialize_type_structure

    def query(self: Table, hash_key: Any, range_comparison: Any, range_objs: Any, limit: Any,
              exclusive_start_key: Any, scan_index_forward: Any, projection_expressions: Any,
              index_name: Optional[str] = None, consistent_read: bool = False, filter_expression: Any = None,
              hash_key_conditions: Any = None, range_key_conditions: Any = None, **filter_kwargs: Any) -> Any:
        args = (self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
                projection_expressions, index_name, consistent_read, filter_expression)
        kwargs = dict(hash_key_conditions=hash_key_conditions, range_key_conditions=range_key_conditions,
                      **filter_kwargs)
        with _LOCK:
            found = _candidates(self, hash_key, index_name, hash_key_conditions, range_key_conditions)
            if found is None:
                return original_query(*args, **kwargs)
            _NARROWED.table, _NARROWED.items = self, found
            try:
                return original_query(*args, **kwargs)
            finally:
                _NARROWED.table = _NARROWED.items = None

    def all_items(self: Table) -> list[Any]:
        if getattr(_NARROWED, "table", None) is self:
            return list(_NARROWED.items)
        return original_all_items(self)

    def put_item(self: Table, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            item = original_put(self, item_attrs, *args, **kwargs)
            written(self, item.hash_key, item.range_key)
            return item

    def delete_item(self: Table, hash_key: Any, range_key: Any) -> Any:
        with _LOCK:
            try:
                return original_delete(self, hash_key, range_key)
            finally:
                if self.range_key_attr and range_key is None:
                    _forget(self)     # moto drops the whole partition then
                else:
                    written(self, hash_key, range_key)

    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        # moto changes the stored item in place (or puts a new one first): whatever happens, the
        # item at this key is placed again afterwards.
        with _LOCK:
            try:
                return original_update(self, table_name, key, *args, **kwargs)
            finally:
                table = self.tables.get(table_name)
                if table is not None:
                    try:
                        hash_key = DynamoType(key[table.hash_key_attr])
                        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                    except Exception:
                        _forget(table)
                    else:
                        written(table, hash_key, range_key)

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue" and self.operation_model.service_model.service_name == "dynamodb":
            written_value = _attribute_value(self, value)
            if written_value is not _GENERIC:
                serialized[self.get_serialized_name(shape, key)] = written_value
                return
        original_structure(self, serialized, value, shape, key)

    def delete_table(self: Any, name: str) -> Any:
        with _LOCK:
            table = self.tables.get(name)
            if table is not None:
                _forget(table)
            return original_delete_table(self, name)

    replacements = {(Table, "query"): query, (Table, "all_items"): all_items, (Table, "put_item"): put_item,
                    (Table, "delete_item"): delete_item, (ddb_models.DynamoDBBackend, "update_item"): update_item,
                    (ddb_models.DynamoDBBackend, "delete_table"): delete_table,
                    (BaseJSONSerializer, "_serialize_type_structure"): serialize_structure}
    saved = {target: getattr(*target) for target in replacements}
    for (owner, name), replacement in replacements.items():
        setattr(owner, name, replacement)
    _INDEXES.clear()   # built only from writes seen while active
    _ACTIVE.append(True)
    try:
        yield
    finally:
        _ACTIVE.pop()
        for (owner, name), original in saved.items():
            setattr(owner, name, original)
        _INDEXES.clear()
