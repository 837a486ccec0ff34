"""Approval gates: ``RUN#{run}``/``APPROVAL#{gate}``. A gate is opened (pending) once, may get the
waiting run execution's token attached, and is decided once: each write says which of those it is,
and is conditioned so that a decided gate never reopens and is never decided twice. (The budget gate
is the exception: approved with a raise, it opens again when the raised budget is used up.)

A pending gate with a decision deadline is also in gsi3 (``GATESDUE``), by deadline."""

from __future__ import annotations

from typing import Any, Optional

from . import keyspace
from .table import Table

_PENDING = {":pending": "pending"}
_REOPENABLE = {":pending": "pending", ":approved": "approved"}
_STATUS = {"#st": "status"}
_INDEX_KEYS = ("gsi3pk", "gsi3sk")


class ApprovalRepository:
    def __init__(self, table: Table):
        self.table = table

    def _item(self, approval: dict[str, Any]) -> dict[str, Any]:
        item = {**keyspace.approval(approval["run_id"], approval["gate"]), "type": "approval",
                **{k: v for k, v in approval.items() if k not in _INDEX_KEYS}}
        if approval.get("status") == "pending" and approval.get("decide_by"):
            item.update(keyspace.gate_due_entry(approval["decide_by"], approval["run_id"], approval["gate"]))
        return item

    def open_op(self, approval: dict[str, Any], reopen_approved: bool = False) -> dict[str, Any]:
        """Open the gate, or keep it open (with what it carries now) while it is still pending;
        ``reopen_approved`` opens again a gate that was approved (the budget's, after a raise)."""
        if reopen_approved:
            return self.table.put_op(self._item(approval), "attribute_not_exists(pk) OR #st IN (:pending, :approved)",
                                     _REOPENABLE, _STATUS)
        return self.table.put_op(self._item(approval), "attribute_not_exists(pk) OR #st = :pending", _PENDING, _STATUS)

    def decide_op(self, decided: dict[str, Any]) -> dict[str, Any]:
        """Record the decision, only on a gate that is still pending."""
        return self.table.put_op(self._item(decided), "#st = :pending", _PENDING, _STATUS)

    def get(self, run_id: str, gate: str) -> Optional[dict[str, Any]]:
        return self.table.get(keyspace.approval(run_id, gate))

    def overdue(self, now: str, limit: int) -> list[dict[str, Any]]:
        """Pending gates whose decision deadline passed before ``now``, oldest deadline first."""
        items, _ = self.table.query_page(index="gsi3", partition_name="gsi3pk", partition=keyspace.GATES_DUE_PARTITION,
                                         limit=limit, cursor=None, sort_condition=("gsi3sk", "<", now))
        return items

    def of_run(self, run_id: str) -> list[dict[str, Any]]:
        return self.table.query(partition=keyspace.run(run_id)["pk"], limit=100,
                                sort_begins_with=keyspace.APPROVAL_SK_PREFIX)


__all__ = ["ApprovalRepository"]
