"""Task state: a task's small versioned key-value store (resumable agents, checkpointers).

A value is any JSON. Up to ``INLINE_LIMIT`` bytes (its compact JSON) it lives in DynamoDB with its
metadata; larger ones (up to ``UPLOAD_LIMIT``) are uploaded to S3 under the same name through a
presigned form and confirmed. Every write is a new version (``expected_version`` makes it
optimistic; 0 means "must not exist"); every version is kept while the task exists, within the
per-task caps.
"""

import hashlib
import json
import re
from typing import Any, Optional

from pydantic import Field, field_validator

from .base import DomainModel
from .errors import InvalidInputError
from .fields import STRICT_INPUT

NAME_RE = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")
INLINE_LIMIT = 200 * 1024          # the API's body limit is 256 KB: larger values go through S3
UPLOAD_LIMIT = 100 * 1024 * 1024
MAX_NAMES_PER_TASK = 200
MAX_VERSIONS_PER_TASK = 5000
STATE_CONTENT_TYPES = ("application/json", "application/octet-stream")


def check_name(name: str) -> str:
    if not NAME_RE.match(name) or ".." in name or name.startswith("/") or name.endswith("/") or "//" in name:
        raise InvalidInputError("a state name is 1 to 200 of A-Z a-z 0-9 . _ / - (no '..', no leading, trailing or "
                                "double '/'); encode '/' as %2F in the URL", code="invalid_state_name")
    return name


def encoded(value: Any) -> str:
    """The value as stored: compact JSON, keys in their order (what the sha256 is taken of)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class StatePut(DomainModel):
    model_config = STRICT_INPUT
    value: Any = Field(description="any JSON value, up to 200 KB as compact JSON (larger: the upload)")
    expected_version: Optional[int] = Field(default=None, ge=0, le=10 ** 9,
                                            description="the version you read (0: the name must not exist)")


class StateUploadRequest(DomainModel):
    model_config = STRICT_INPUT
    size: int = Field(ge=1, le=UPLOAD_LIMIT)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str = Field(default="application/json")
    expected_version: Optional[int] = Field(default=None, ge=0, le=10 ** 9)

    @field_validator("content_type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in STATE_CONTENT_TYPES:
            raise ValueError(f"content_type must be one of {', '.join(STATE_CONTENT_TYPES)}")
        return value


class StateConfirm(DomainModel):
    model_config = STRICT_INPUT


class StateMeta(DomainModel):
    name: str
    version: int
    size: int
    sha256: str
    content_type: str = "application/json"
    stored: str = Field(default="inline", description="inline (DynamoDB) or s3")
    updated_at: str
    updated_by: str


class StateValue(StateMeta):
    value: Any = None
    download_url: Optional[str] = None


class StateUpload(DomainModel):
    url: str
    fields: dict[str, str]
    expires_at: str


class StateUploadAnswer(DomainModel):
    upload: StateUpload
    name: str
    version: int = Field(description="the version the confirmation will make")


__all__ = ["INLINE_LIMIT", "MAX_NAMES_PER_TASK", "MAX_VERSIONS_PER_TASK", "StateConfirm", "StateMeta", "StatePut",
           "StateUpload", "StateUploadAnswer", "StateUploadRequest", "StateValue", "UPLOAD_LIMIT", "check_name",
           "digest", "encoded"]
