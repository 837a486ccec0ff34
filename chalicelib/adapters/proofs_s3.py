"""Proof objects in S3: presigned uploads and downloads, and what an uploaded object really is.

A thin translation to S3: keys and limits are decided by the caller (domain/proofs.py); this
module only asks S3. Presigning is local computation (no AWS call).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Optional

from botocore.exceptions import ClientError

from ..domain.proofs import ATTACHMENT_TYPE, RASTER_IMAGE_TYPES

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_CHUNK = 1024 * 1024
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


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

    def presigned_get(self, key: str, *, expires_in: int, filename: str, content_type: str = ATTACHMENT_TYPE,
                      inline: bool = False, version_id: Optional[str] = None) -> str:
        """A short-lived GET URL that always says how the browser must treat what it gets.

        S3 answers with ``Content-Disposition`` and ``Content-Type`` taken from the URL (whatever
        was stored with the object): an attachment named ``filename`` (made safe for the header)
        of ``content_type`` unless ``inline``, which only a raster image type may be (anything
        else is a ValueError: a caller's mistake, never served).
        """
        if inline and content_type not in RASTER_IMAGE_TYPES:
            raise ValueError(f"only raster images may be served inline, not {content_type!r}")
        if not content_type.isascii() or not content_type.isprintable() or '"' in content_type:
            raise ValueError(f"not a safe response content type: {content_type!r}")
        name = _SAFE_FILENAME.sub("_", filename).strip("._") or "proof"
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key,
                                  "ResponseContentDisposition": f'{"inline" if inline else "attachment"}; '
                                                                f'filename="{name[:128]}"',
                                  "ResponseContentType": content_type}
        if version_id:
            params["VersionId"] = version_id
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
