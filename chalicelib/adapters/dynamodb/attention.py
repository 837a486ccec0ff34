"""Attention items: ``ATTENTION#{id}``/``META``, listed per project (gsi1) and for everyone (gsi3)
by status, newest first. Opened in the transaction of what raised them (a gate, a report, the
director), resolved by a person or by that thing's end (a gate's decision)."""

from __future__ import annotations

from typing import Any, Optional

from ...domain import clock
from ...domain.entities import AttentionItem
from ...domain.enums import AttentionStatus
from . import keyspace
from .table import Table


def attention_to_item(item: AttentionItem) -> dict[str, Any]:
    return {**keyspace.attention(item.id), "type": "attention", **item.model_dump(mode="json"),
            **keyspace.attention_entries(item.project_id, item.status.value, item.created_at, item.id)}


def item_to_attention(item: dict[str, Any]) -> AttentionItem:
    return AttentionItem(**{k: v for k, v in item.items() if k in AttentionItem.model_fields})


class AttentionRepository:
    def __init__(self, table: Table):
        self.table = table

    def open_op(self, item: AttentionItem) -> dict[str, Any]:
        return self.table.put_op(attention_to_item(item), "attribute_not_exists(pk)")

    def resolve_op(self, item_id: str, project_id: str, created_at: str, *, by: str, comment: str,
                   only_if_open: bool = True) -> dict[str, Any]:
        """Resolve an item (it moves to the resolved lists). ``only_if_open``: a person resolving,
        refused on a resolved item; otherwise (what raised it ended) a resolved item keeps who
        resolved it and when."""
        entries = keyspace.attention_entries(project_id, AttentionStatus.resolved.value, created_at, item_id)
        return self.table.update_op(
            keyspace.attention(item_id),
            "SET #st = :resolved, resolved_by = if_not_exists(resolved_by, :by), "
            "resolved_at = if_not_exists(resolved_at, :now), #c = if_not_exists(#c, :comment), "
            "gsi1pk = :g1, gsi1sk = :s, gsi3pk = :g3, gsi3sk = :s",
            condition="#st = :open" if only_if_open else "attribute_exists(pk)",
            names={"#st": "status", "#c": "comment"},
            values={":resolved": AttentionStatus.resolved.value, ":by": by, ":now": clock.now_iso(),
                    ":comment": comment, ":g1": entries["gsi1pk"], ":g3": entries["gsi3pk"], ":s": entries["gsi1sk"],
                    **({":open": AttentionStatus.open.value} if only_if_open else {})})

    def get(self, item_id: str) -> Optional[AttentionItem]:
        item = self.table.get(keyspace.attention(item_id))
        return item_to_attention(item) if item else None

    def newest(self, project_id: Optional[str], status: str, limit: int, before: Optional[str]) -> list[AttentionItem]:
        """Items of a project (None: of every project), newest first, sorting before ``before``
        (``{created_at}#{id}`` of the last item a page showed)."""
        if project_id is None:
            index, name, partition, sort = "gsi3", "gsi3pk", f"ATTENTION#{status}", "gsi3sk"
        else:
            index, name, partition, sort = "gsi1", "gsi1pk", keyspace.attention_of_project(project_id, status), "gsi1sk"
        items, _ = self.table.query_page(index=index, partition_name=name, partition=partition, limit=limit,
                                         cursor=None, forward=False,
                                         sort_condition=(sort, "<", before) if before else None)
        return [item_to_attention(i) for i in items]


__all__ = ["AttentionRepository", "attention_to_item", "item_to_attention"]
