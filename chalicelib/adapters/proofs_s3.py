"""Proof objects in S3: presigned uploads and downloads, and what an uploaded object really is.

A thin translation to S3: keys and limits are decided by the caller (domain/evidence.py); this
module only asks S3. Presigning is local computation (no AWS call).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Optional

from botocore.exceptions import ClientError

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    size: int
    content_type: str
    version_id: Optional[str] = None


class ProofStore:
    """The proof bucket. Takes its S3 client and bucket name; builds nothing."""

    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket

    def presigned_post(self, key: str, *, content_type: str, size: int, expires_in: int) -> dict[str, Any]:
        """A form that uploads exactly ``size`` bytes of ``content_type`` to ``key``, and nothing else.

        S3 enforces the policy: the key, the content type (exact) and the length range [size, size].
        """
        return self.client.generate_presigned_post(
            Bucket=self.bucket, Key=key, Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", size, size]],
            ExpiresIn=expires_in)

    def presigned_get(self, key: str, *, expires_in: int, filename: Optional[str] = None,
                      content_type: Optional[str] = None, version_id: Optional[str] = None) -> str:
        """A short-lived GET URL; with ``filename`` the browser saves the file instead of showing it."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        if content_type:
            params["ResponseContentType"] = content_type
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    def head(self, key: str) -> Optional[StoredObject]:
        """What is stored at ``key``, or None when nothing is."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                return None
            raise
        return StoredObject(size=int(response["ContentLength"]), content_type=response.get("ContentType", ""),
                            version_id=response.get("VersionId"))

    def sha256(self, key: str, version_id: Optional[str] = None) -> str:
        """The hex SHA-256 of the stored bytes, read as a stream."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        body = self.client.get_object(**kwargs)["Body"]
        digest = hashlib.sha256()
        try:
            for chunk in iter(lambda: body.read(_CHUNK), b""):
                digest.update(chunk)
        finally:
            body.close()
        return digest.hexdigest()

    def read(self, key: str, max_bytes: int, version_id: Optional[str] = None) -> bytes:
        """The object's bytes (callers check its size first; at most ``max_bytes`` are read)."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        body = self.client.get_object(**kwargs)["Body"]
        try:
            return body.read(max_bytes)
        finally:
            body.close()

    def delete(self, key: str, version_id: Optional[str] = None) -> None:
        """Remove the object; with ``version_id`` that version is removed for good (versioned bucket)."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        self.client.delete_object(**kwargs)
