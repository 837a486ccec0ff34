"""Projects: a git repository that runs work on.

Repository URLs follow ``domain.repository_url``: the request models apply the rules that hold
everywhere (400 ``invalid_body``), and this service the one that depends on the stage: a
``file://`` URL or an absolute path only on the local and test stages (else 400
``invalid_repository_url``).
"""

from __future__ import annotations

from typing import Optional

from ..adapters.dynamodb import Page, Repositories
from ..adapters.pagination import decode_cursor, encode_cursor
from ..config import Settings
from ..domain import clock
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import ForbiddenError, InvalidInputError, NotFoundError
from ..domain.ids import is_valid_project_id
from ..domain.entities import Project
from ..domain.requests import ProjectCreate, ProjectPatch
from ..domain.repository_url import allows_local, check_repository_url


class ProjectService:
    def __init__(self, repos: Repositories, *, stage: Optional[str] = None):
        self.repos = repos
        # The stage decides whether local repositories are allowed; read as Settings reads it
        # when the caller does not say (bootstrap builds ``ProjectService(store)``).
        self.stage = stage if stage is not None else Settings.from_env().stage

    def check_repository_url(self, url: str) -> None:
        """400 ``invalid_repository_url`` unless a project of this stage may name ``url``."""
        try:
            check_repository_url(url, allow_local=allows_local(self.stage))
        except ValueError as error:
            raise InvalidInputError(str(error), code="invalid_repository_url",
                                    details=[{"loc": ["repository_url"], "msg": str(error)}]) from None

    def create(self, principal: Principal, request: ProjectCreate) -> Project:
        authorize(principal, Action.create_project)
        if not principal.sees_project(request.id):
            raise ForbiddenError(f"your key is not scoped to project {request.id!r}; "
                                 "use a key that lists it in project_ids, or an admin key")
        self.check_repository_url(request.repository_url)
        now = clock.now_iso()
        project = Project(**request.model_dump(), created_at=now, updated_at=now, created_by=principal.actor)
        self.repos.projects.create(project)
        return project

    def get(self, principal: Principal, project_id: str, action: Action = Action.read) -> Project:
        authorize(principal, action, project_id=project_id, what="project")
        project = self.repos.projects.get(project_id) if is_valid_project_id(project_id) else None
        if project is None:
            raise NotFoundError("project not found")
        return project

    def list(self, principal: Principal, limit: int, cursor: Optional[str]) -> Page:
        authorize(principal, Action.read)
        if principal.is_admin:
            return self.repos.projects.list(limit, cursor)
        # A scoped key sees at most its own (≤100) projects: one BatchGetItem, paged here.
        start = decode_cursor(cursor, expected={}, names=frozenset({"after"}))
        after = start["after"] if start else ""
        projects = [p for p in self.repos.projects.get_many(principal.project_ids) if p.id > after]
        page = projects[:limit]
        more = len(projects) > limit
        return Page(page, encode_cursor({"after": page[-1].id}) if more else None)

    def patch(self, principal: Principal, project_id: str, request: ProjectPatch) -> Project:
        project = self.get(principal, project_id, Action.manage_project)
        changes = request.model_dump(exclude_unset=True)
        if "repository_url" in changes:
            self.check_repository_url(changes["repository_url"])
        updated = project.model_copy(update={**changes, "updated_at": clock.now_iso(),
                                             "version": project.version + 1})
        self.repos.projects.replace(updated, project.version)
        return updated
