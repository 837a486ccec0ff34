"""Approval gates: ``RUN#{run}``/``APPROVAL#{gate}``. A gate is opened (pending) once, may get the
waiting run execution's token attached, and is decided once: each write says which of those it is,
and is conditioned so that a decided gate never reopens and is never decided twice."""

from __future__ import annotations

from typing import Any, Optional

from . import keyspace
from .table import Table

_PENDING = {":pending": "pending"}
_STATUS = {"#st": "status"}


class ApprovalRepository:
    def __init__(self, table: Table):
        self.table = table

    def _item(self, approval: dict[str, Any]) -> dict[str, Any]:
        return {**keyspace.approval(approval["run_id"], approval["gate"]), "type": "approval", **approval}

    def open_op(self, approval: dict[str, Any]) -> dict[str, Any]:
        """Open the gate, or keep it open (with what it carries now) while it is still pending."""
        return self.table.put_op(self._item(approval), "attribute_not_exists(pk) OR #st = :pending", _PENDING, _STATUS)

    def decide_op(self, decided: dict[str, Any]) -> dict[str, Any]:
        """Record the decision, only on a gate that is still pending."""
        return self.table.put_op(self._item(decided), "#st = :pending", _PENDING, _STATUS)

    def get(self, run_id: str, gate: str) -> Optional[dict[str, Any]]:
        return self.table.get(keyspace.approval(run_id, gate))

    def of_run(self, run_id: str) -> list[dict[str, Any]]:
        return self.table.query(partition=keyspace.run(run_id)["pk"], limit=100,
                                sort_begins_with=keyspace.APPROVAL_SK_PREFIX)


__all__ = ["ApprovalRepository"]
