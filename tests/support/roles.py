"""Role configs of a running stack, read and put back over HTTP (roles are the one setting every
project of a stack shares)."""

from __future__ import annotations

from typing import Any

ROLE_SPEC_FIELDS = ("prompt", "executor", "command", "image", "required_proofs", "timeout_seconds",
                    "heartbeat_seconds")


def role_specs(admin: Any) -> dict[str, dict[str, Any]]:
    """Every active role config's spec (what ``PUT /roles/{role}`` takes), by role."""
    listed = admin.get("/roles")
    return {config["role"]: {name: config.get(name) for name in ROLE_SPEC_FIELDS}
            for config in (listed["items"] if isinstance(listed, dict) else listed)}


def restore_roles(admin: Any, specs: dict[str, dict[str, Any]]) -> None:
    """Publish again every role config that differs from ``specs`` (a new version, the old content)."""
    current = role_specs(admin)
    for role, spec in specs.items():
        if current.get(role) != spec:
            admin.put(f"/roles/{role}", spec)
    assert role_specs(admin) == specs
