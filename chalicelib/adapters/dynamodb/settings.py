"""Director settings: one versioned item, ``SETTINGS#director``/``META``."""

from __future__ import annotations

from typing import Any, Optional

from ...domain.errors import ConflictError
from . import keyspace
from .table import Table


class SettingsRepository:
    def __init__(self, table: Table):
        self.table = table

    def director(self) -> Optional[dict[str, Any]]:
        return self.table.get(keyspace.director_settings())

    def replace_director(self, settings: dict[str, Any], previous_version: int) -> None:
        """Write version N+1 of the settings, unless someone else changed them since version N."""
        item = {**keyspace.director_settings(), "type": "director_settings", **settings}
        if previous_version == 0:
            op = self.table.put_op(item, "attribute_not_exists(pk)")
        else:
            op = self.table.put_op(item, "version = :v", {":v": previous_version})
        if not self.table.write(op):
            raise ConflictError("the director settings changed at the same time; read them and retry",
                                code="stale_version")


__all__ = ["SettingsRepository"]
