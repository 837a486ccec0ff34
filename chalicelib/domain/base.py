"""The base of every Baton model: validation is built on first use, not at import, so a cold
Lambda start does not pay for the models its request never touches."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DomainModel(BaseModel):
    model_config = ConfigDict(defer_build=True)


__all__ = ["DomainModel"]
