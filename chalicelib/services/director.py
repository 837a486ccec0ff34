"""Director settings: one item, versioned, read by everyone, changed by admins."""

from __future__ import annotations

from ..adapters.dynamodb import Repositories
from ..domain import clock
from ..domain.auth import Action, Principal, authorize
from ..domain.entities import DirectorSettings
from ..domain.requests import DirectorSettingsPatch


class DirectorService:
    def __init__(self, repos: Repositories):
        self.repos = repos

    def current(self) -> DirectorSettings:
        item = self.repos.settings.director()
        return DirectorSettings(**{k: v for k, v in (item or {}).items() if k in DirectorSettings.model_fields})

    def get(self, principal: Principal) -> DirectorSettings:
        authorize(principal, Action.read)
        return self.current()

    def patch(self, principal: Principal, request: DirectorSettingsPatch) -> DirectorSettings:
        authorize(principal, Action.manage_roles)
        current = self.current()
        updated = current.model_copy(update={**request.model_dump(exclude_unset=True), "version": current.version + 1,
                                             "updated_at": clock.now_iso(), "updated_by": principal.actor})
        self.repos.settings.replace_director(updated.model_dump(mode="json"), current.version)
        return updated
