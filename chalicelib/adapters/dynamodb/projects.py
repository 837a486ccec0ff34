"""Projects: ``PROJECT#{id}``/``META``, listed on gsi1 ``PROJECTS``; and each project's backlog
pointer (``PROJECT#{id}``/``BACKLOG``), the open run where bug reports without a run go."""

from __future__ import annotations

from typing import Any, Iterable, Optional

from ...domain.errors import ConflictError
from ...domain.entities import Project
from . import keyspace
from .table import GSI1_NAMES, Page, Table, TransactionCancelledError


def project_to_item(project: Project) -> dict[str, Any]:
    return {**keyspace.project(project.id), **keyspace.project_list_entry(project.id), "type": "project",
            **project.model_dump(mode="json")}


def item_to_project(item: dict[str, Any]) -> Project:
    return Project(**{k: v for k, v in item.items() if k in Project.model_fields})


class ProjectRepository:
    def __init__(self, table: Table):
        self.table = table

    def create(self, project: Project) -> None:
        try:
            self.table.transact([self.table.put_op(project_to_item(project), "attribute_not_exists(pk)")])
        except TransactionCancelledError:
            raise ConflictError(f"project {project.id!r} already exists; choose another id",
                                code="project_exists") from None

    def get(self, project_id: str) -> Optional[Project]:
        item = self.table.get(keyspace.project(project_id))
        return item_to_project(item) if item else None

    def replace(self, project: Project, expected_version: int) -> None:
        op = self.table.put_op(project_to_item(project), "version = :v", {":v": expected_version})
        if not self.table.write(op):
            raise ConflictError("the project changed since it was read; retry", code="stale_version")

    def list(self, limit: int, cursor: Optional[str]) -> Page:
        items, next_cursor = self.table.query_page(index="gsi1", partition_name="gsi1pk",
                                                   partition=keyspace.PROJECTS_PARTITION, limit=limit, cursor=cursor,
                                                   names=GSI1_NAMES)
        return Page([item_to_project(i) for i in items], next_cursor)

    def get_many(self, project_ids: Iterable[str]) -> list[Project]:
        found = self.table.batch_get([keyspace.project(p) for p in sorted(set(project_ids))])
        return sorted((item_to_project(i) for i in found), key=lambda p: p.id)

    def all(self) -> Iterable[Project]:
        return self.table.pages(self.list)

    # ---- the project's backlog run

    def backlog_run_id(self, project_id: str) -> Optional[str]:
        item = self.table.get(keyspace.backlog(project_id))
        return item["run_id"] if item else None

    def set_backlog_run(self, project_id: str, run_id: str, previous: Optional[str], now: str) -> bool:
        """Point the project's backlog at ``run_id`` unless someone moved it from ``previous`` first."""
        item = {**keyspace.backlog(project_id), "type": "backlog", "project_id": project_id, "run_id": run_id,
                "updated_at": now}
        if previous is None:
            return self.table.write(self.table.put_op(item, "attribute_not_exists(pk)"))
        return self.table.write(self.table.put_op(item, "run_id = :previous", {":previous": previous}))


__all__ = ["ProjectRepository", "item_to_project", "project_to_item"]
