"""The base of every Baton model: validation is built on first use, not at import, so a cold
Lambda start does not pay for the models its request never touches.

The modules that define the models the app imports (entities, requests, handoffs, proofs, roles,
state, context, usage, bugs, auth, findings.reports) do without ``from __future__ import
annotations``: with it, pydantic compiles and evaluates every annotation string while it makes each
class, about a third of a model's import time."""

from pydantic import BaseModel, ConfigDict


class DomainModel(BaseModel):
    model_config = ConfigDict(defer_build=True)


__all__ = ["DomainModel"]
