"""Role configs: immutable versions ``ROLE#{role}``/``V#{version:06d}`` and an ``ACTIVE`` copy of the
latest; publishing writes version N and moves ACTIVE in one transaction, conditioned on N-1.

A version never changes once written, so the repository keeps the versions it read (a few hundred
at most, per process): the task context and the dispatcher read a run's pinned version once per
container, not once per request."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ...domain.errors import ConflictError
from . import keyspace
from .table import Table, TransactionCancelledError


VERSIONS_KEPT = 256


class RoleRepository:
    def __init__(self, table: Table):
        self.table = table
        self._versions: dict[tuple[str, int], dict[str, Any]] = {}

    def active(self, role: str) -> Optional[dict[str, Any]]:
        return self.table.get(keyspace.role_active(role))

    def version(self, role: str, version: int) -> Optional[dict[str, Any]]:
        kept = self._versions.get((role, version))
        if kept is not None:
            return dict(kept)
        item = self.table.get(keyspace.role_version(role, version))
        if item is not None:   # a version that does not exist yet may be published later: not kept
            if len(self._versions) >= VERSIONS_KEPT:
                self._versions.pop(next(iter(self._versions)))
            self._versions[(role, version)] = dict(item)
        return item

    def active_many(self, roles: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {item["role"]: item for item in self.table.batch_get([keyspace.role_active(r) for r in roles])}

    def publish(self, config: dict[str, Any], previous_version: Optional[int]) -> None:
        """Write version N and move ACTIVE to it, unless someone else published N first."""
        version_item = {**keyspace.role_version(config["role"], config["version"]), "type": "role_version", **config}
        active_item = {**keyspace.role_active(config["role"]), "type": "role_active", **config}
        if previous_version is None:
            active = self.table.put_op(active_item, "attribute_not_exists(pk)")
        else:
            active = self.table.put_op(active_item, "version = :v", {":v": previous_version})
        try:
            self.table.transact([self.table.put_op(version_item, "attribute_not_exists(pk)"), active])
        except TransactionCancelledError:
            raise ConflictError(f"role {config['role']} was changed at the same time; read it and retry",
                                code="stale_version") from None

    def versions(self, role: str) -> list[dict[str, Any]]:
        return self.table.query(partition=keyspace.role_active(role)["pk"], limit=1000, forward=False,
                                sort_begins_with=keyspace.ROLE_VERSION_SK_PREFIX)


__all__ = ["RoleRepository"]
