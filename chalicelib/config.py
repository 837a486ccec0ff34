"""Settings read from the environment (set per stage in .chalice/config.json, or by the local stack)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    table_name: str
    orchestration: str            # "stepfunctions" or "plain" (tasks claimable at once, no executions)

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            stage=os.environ.get("BATON_STAGE", "local"),
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            table_name=os.environ.get("BATON_TABLE", "baton-local"),
            orchestration=os.environ.get("BATON_ORCHESTRATION", "plain"),
        )
