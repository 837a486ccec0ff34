"""Role configs: the active version of each role, immutable history, and what a run pinned."""

from __future__ import annotations

from typing import Any, Optional

from ..adapters.dynamodb import Repositories
from ..domain import clock
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import ConflictError, NotFoundError
from ..domain.enums import Role, Stage
from ..domain.roles import RoleConfig, RoleSpec, build_config, default_roles, role_for_stage

ROLE_NAMES = [r.value for r in Role]


def parse_role(raw: str) -> Role:
    try:
        return Role(raw)
    except ValueError:
        raise NotFoundError(f"role {raw!r} does not exist; roles are {', '.join(ROLE_NAMES)}") from None


class RoleService:
    def __init__(self, repos: Repositories):
        self.repos = repos

    def active(self, role: Role) -> RoleConfig:
        """The active config; the first read of a role writes its built-in default as version 1."""
        item = self.repos.roles.active(role.value)
        if item is None:
            return self._seed(role)
        return RoleConfig(**item)

    def active_all(self) -> dict[Role, RoleConfig]:
        found = self.repos.roles.active_many(ROLE_NAMES)
        configs = {}
        for role in Role:
            configs[role] = RoleConfig(**found[role.value]) if role.value in found else self._seed(role)
        return configs

    def _seed(self, role: Role) -> RoleConfig:
        config = build_config(role, default_roles()[role], 1, clock.now_iso(), "baton-defaults")
        try:
            self.repos.roles.publish(config.model_dump(mode="json"), None)
        except ConflictError:
            pass  # seeded concurrently: read what won
        return RoleConfig(**(self.repos.roles.active(role.value) or config.model_dump(mode="json")))

    def version(self, role: Role, version: int) -> Optional[RoleConfig]:
        item = self.repos.roles.version(role.value, version)
        return RoleConfig(**item) if item else None

    def pinned_for_stage(self, run_item: dict[str, Any], stage: Stage) -> RoleConfig:
        """The config the run pinned for the stage's role (the active one if the run pinned none)."""
        role = role_for_stage(stage)
        version = (run_item.get("pinned_role_versions") or {}).get(role.value)
        config = self.version(role, int(version)) if version else None
        return config or self.active(role)

    # ---- API use cases

    def get(self, principal: Principal, raw_role: str) -> RoleConfig:
        authorize(principal, Action.read_config)
        return self.active(parse_role(raw_role))

    def list(self, principal: Principal) -> list[RoleConfig]:
        authorize(principal, Action.read_config)
        return list(self.active_all().values())

    def versions(self, principal: Principal, raw_role: str) -> list[RoleConfig]:
        authorize(principal, Action.read_config)
        role = parse_role(raw_role)
        self.active(role)
        return [RoleConfig(**item) for item in self.repos.roles.versions(role.value)]

    def put(self, principal: Principal, raw_role: str, spec: RoleSpec) -> RoleConfig:
        authorize(principal, Action.manage_roles)
        role = parse_role(raw_role)
        current = self.active(role)
        config = build_config(role, spec, current.version + 1, clock.now_iso(), principal.actor)
        if config.digest == current.digest:
            return current  # same definition: no new version
        self.repos.roles.publish(config.model_dump(mode="json"), current.version)
        return config
