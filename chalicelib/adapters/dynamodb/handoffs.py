"""Handoffs: in their task's partition, ``TASK#{task}``/``HANDOFF#{created_at}#{id}`` (newest first is
a descending Query), with a pointer item ``HANDOFF#{id}``/``META`` naming the task and sort key, so
a handoff is found by id with two GetItems. Creating one also counts it against the task's cap."""

from __future__ import annotations

from typing import Any, Callable, Optional

from ...domain.errors import InvalidInputError
from ...domain.handoffs import Handoff
from ..pagination import decode_cursor, encode_cursor
from . import keyspace
from .table import KEY_NAMES, Page, Table
from .tasks import MAX_HANDOFFS_PER_TASK, TaskRepository


def handoff_to_item(handoff: Handoff) -> dict[str, Any]:
    return {**keyspace.handoff(handoff.task_id, handoff.created_at, handoff.id), "type": "handoff",
            **handoff.model_dump(mode="json")}


def item_to_handoff(item: dict[str, Any]) -> Handoff:
    return Handoff(**{k: v for k, v in item.items() if k in Handoff.model_fields})


def pointer_item(key: dict[str, str], kind: str, task_id: str, item_sk: str) -> dict[str, Any]:
    return {**key, "type": kind, "task_id": task_id, "item_sk": item_sk}


def check_task_list_cursor(task_id: str, cursor: Optional[str], inside: Callable[[str], bool]) -> None:
    """A cursor of another list of the same partition would start outside this list's key range
    (DynamoDB answers that with a ValidationException): refuse it as a bad cursor."""
    start = decode_cursor(cursor, expected={"pk": keyspace.task_partition(task_id)}, names=KEY_NAMES)
    if start and not inside(start["sk"]):
        raise InvalidInputError("cursor is not valid for this list; pass the next_cursor of the previous page",
                                code="invalid_cursor")


class HandoffRepository:
    def __init__(self, table: Table, tasks: TaskRepository):
        self.table = table
        self.tasks = tasks

    def create_ops(self, handoff: Handoff) -> list[dict[str, Any]]:
        item = handoff_to_item(handoff)
        pointer = pointer_item(keyspace.handoff_ref(handoff.id), "handoff_ref", handoff.task_id, item["sk"])
        return [self.table.put_op(item, "attribute_not_exists(pk)"), self.table.put_op(pointer, "attribute_not_exists(pk)"),
                self.tasks.count_op(handoff.task_id, "n_handoffs", MAX_HANDOFFS_PER_TASK)]

    def within_cap(self, task_id: str):
        return self.tasks.within_cap(task_id, "n_handoffs", MAX_HANDOFFS_PER_TASK, "handoffs")

    def replace_op(self, handoff: Handoff, expected_version: int) -> dict[str, Any]:
        return self.table.put_op(handoff_to_item(handoff), "version = :v", {":v": expected_version})

    def get(self, handoff_id: str) -> Optional[Handoff]:
        pointer = self.table.get(keyspace.handoff_ref(handoff_id))
        if pointer is None:
            return None
        item = self.table.get({"pk": keyspace.task_partition(pointer["task_id"]), "sk": pointer["item_sk"]})
        return item_to_handoff(item) if item else None

    def of_task(self, task_id: str, limit: int, cursor: Optional[str]) -> Page:
        """Newest first. Handoff keys sort below ``HANDOFF$``; the type filter keeps the list exact."""
        below = keyspace.HANDOFF_SK_PREFIX[:-1] + "$"
        check_task_list_cursor(task_id, cursor, lambda sk: sk < below)
        items, next_cursor = self.table.query_page(
            index=None, partition_name="pk", partition=keyspace.task_partition(task_id), limit=limit, cursor=cursor,
            forward=False, sort_condition=("sk", "<", below), filters={"type": "handoff"})
        return Page([item_to_handoff(i) for i in items], next_cursor)

    def cursor_after(self, handoff: Handoff) -> Optional[str]:
        """The ``of_task`` cursor that continues after ``handoff``."""
        return encode_cursor({"pk": keyspace.task_partition(handoff.task_id), "sk": handoff_to_item(handoff)["sk"]})


__all__ = ["HandoffRepository", "check_task_list_cursor", "handoff_to_item", "item_to_handoff", "pointer_item"]
