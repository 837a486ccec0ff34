"""Director settings: one item, versioned, read by everyone, changed by admins."""

from __future__ import annotations

from ..adapters import keys
from ..adapters.dynamo import BatonStore, TransactionCancelled
from ..domain import clock
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import ConflictError
from ..domain.models import DirectorSettings, DirectorSettingsPatch


class DirectorService:
    def __init__(self, store: BatonStore):
        self.store = store

    def current(self) -> DirectorSettings:
        item = self.store._get(keys.director_settings())
        return DirectorSettings(**{k: v for k, v in (item or {}).items() if k in DirectorSettings.model_fields})

    def get(self, principal: Principal) -> DirectorSettings:
        authorize(principal, Action.read)
        return self.current()

    def patch(self, principal: Principal, request: DirectorSettingsPatch) -> DirectorSettings:
        authorize(principal, Action.manage_roles)
        current = self.current()
        updated = current.model_copy(update={**request.model_dump(exclude_unset=True), "version": current.version + 1,
                                             "updated_at": clock.now_iso(), "updated_by": principal.actor})
        item = {**keys.director_settings(), "type": "director_settings", **updated.model_dump(mode="json")}
        condition = "attribute_not_exists(pk)" if current.version == 0 else "version = :v"
        values = None if current.version == 0 else {":v": current.version}
        try:
            self.store.transact([self.store.put_op(item, condition, values)])
        except TransactionCancelled:
            raise ConflictError("the director settings changed at the same time; read them and retry",
                                code="stale_version") from None
        return updated
