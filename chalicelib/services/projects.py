"""Projects: a git repository that runs work on."""

from __future__ import annotations

from typing import Optional

from ..adapters.dynamo import BatonStore, Page
from ..adapters.pagination import decode_cursor, encode_cursor
from ..domain import clock
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import ForbiddenError, NotFoundError
from ..domain.ids import is_valid_project_id
from ..domain.models import Project, ProjectCreate, ProjectPatch


class ProjectService:
    def __init__(self, store: BatonStore):
        self.store = store

    def create(self, principal: Principal, request: ProjectCreate) -> Project:
        authorize(principal, Action.create_project)
        if not principal.sees_project(request.id):
            raise ForbiddenError(f"your key is not scoped to project {request.id!r}; "
                                 "use a key that lists it in project_ids, or an admin key")
        now = clock.now_iso()
        project = Project(**request.model_dump(), created_at=now, updated_at=now, created_by=principal.actor)
        self.store.create_project(project)
        return project

    def get(self, principal: Principal, project_id: str, action: Action = Action.read) -> Project:
        authorize(principal, action, project_id=project_id, what="project")
        project = self.store.get_project(project_id) if is_valid_project_id(project_id) else None
        if project is None:
            raise NotFoundError("project not found")
        return project

    def list(self, principal: Principal, limit: int, cursor: Optional[str]) -> Page:
        authorize(principal, Action.read)
        if principal.is_admin:
            return self.store.list_projects(limit, cursor)
        # A scoped key sees at most its own (≤100) projects: one BatchGetItem, paged here.
        start = decode_cursor(cursor, expected={}, names=frozenset({"after"}))
        after = start["after"] if start else ""
        projects = [p for p in self.store.get_projects(principal.project_ids) if p.id > after]
        page = projects[:limit]
        more = len(projects) > limit
        return Page(page, encode_cursor({"after": page[-1].id}) if more else None)

    def patch(self, principal: Principal, project_id: str, request: ProjectPatch) -> Project:
        project = self.get(principal, project_id, Action.manage_project)
        changes = request.model_dump(exclude_unset=True)
        updated = project.model_copy(update={**changes, "updated_at": clock.now_iso(),
                                             "version": project.version + 1})
        self.store.replace_project(updated, project.version)
        return updated
