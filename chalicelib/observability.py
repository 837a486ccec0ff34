"""Powertools logging, shared by every entrypoint. Logs are JSON and carry the ids of what they
are about (run, task, job); secrets (keys, task tokens, presigned URLs) are never logged."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="baton")
