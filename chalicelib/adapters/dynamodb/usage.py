"""Usage roll-ups: ``RUN#{run}``/``USAGE``, flat counters ADDed in the transaction that records a
report (no read). The run item keeps the two totals its budget check needs."""

from __future__ import annotations

from typing import Any, Optional

from . import keyspace
from .table import Table


class UsageRepository:
    def __init__(self, table: Table):
        self.table = table

    def add_op(self, run_id: str, counters: dict[str, int]) -> dict[str, Any]:
        """An Update that adds ``counters`` to the run's roll-up (creating it on the first report)."""
        names, parts, values = {}, [], {}
        for i, (name, amount) in enumerate(sorted(counters.items())):
            names[f"#u{i}"] = name
            values[f":u{i}"] = amount
            parts.append(f"#u{i} :u{i}")
        return self.table.update_op(keyspace.run_usage(run_id), "ADD " + ", ".join(parts), values=values, names=names)

    def with_run(self, run_id: str) -> tuple[Optional[dict[str, Any]], dict[str, Any]]:
        """The run item and its roll-up's counters, in one BatchGetItem."""
        items = self.table.batch_get([keyspace.run(run_id), keyspace.run_usage(run_id)])
        run = next((i for i in items if i["sk"] == keyspace.META), None)
        rollup = next((i for i in items if i["sk"] == keyspace.run_usage(run_id)["sk"]), {})
        return run, {k: v for k, v in rollup.items() if k not in ("pk", "sk", "type")}


__all__ = ["UsageRepository"]
