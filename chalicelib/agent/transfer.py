"""Proof bytes to and from S3 through presigned URLs (standard library only).

Upload is S3's browser-style POST: a multipart/form-data body with the policy's fields first and
the file last. Download is a plain GET of a presigned URL. Neither carries Baton's API key.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import urllib.error
import urllib.request
from typing import Any, Mapping

from .client import ApiError

TIMEOUT_SECONDS = 300


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_multipart(fields: Mapping[str, Any], filename: str, content_type: str,
                     data: bytes) -> tuple[bytes, str]:
    """The body and Content-Type of a form with ``fields`` then one ``file`` part (S3 ignores
    anything after the file, so it must come last)."""
    boundary = "baton-" + secrets.token_hex(16)
    safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                     + str(value).encode() + b"\r\n")
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
                 f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def require_http(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ApiError(0, "bad_url", "the storage URL from the API is not http(s)")
    return url


def upload_presigned_post(url: str, fields: Mapping[str, Any], filename: str, content_type: str,
                          data: bytes) -> None:
    require_http(url)
    body, form_type = encode_multipart(fields, filename, content_type, data)
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": form_type})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # nosec B310  # scheme checked by require_http
            response.read()
    except urllib.error.HTTPError as error:
        raise storage_error(error, "the upload to storage was refused") from None
    except (urllib.error.URLError, OSError) as error:
        raise ApiError(0, "unreachable", f"cannot reach the proof storage at {_host(url)}: "
                                         f"{getattr(error, 'reason', error)}") from None


def download(url: str) -> bytes:
    require_http(url)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=TIMEOUT_SECONDS) as response:  # nosec B310  # scheme checked by require_http
            return response.read()
    except urllib.error.HTTPError as error:
        raise storage_error(error, "the download from storage was refused") from None
    except (urllib.error.URLError, OSError) as error:
        raise ApiError(0, "unreachable", f"cannot reach the proof storage at {_host(url)}: "
                                         f"{getattr(error, 'reason', error)}") from None


def storage_error(error: urllib.error.HTTPError, what: str) -> ApiError:
    """S3 answers errors in XML: keep its Code and Message."""
    raw = error.read().decode(errors="replace")
    code = re.search(r"<Code>([^<]*)</Code>", raw)
    message = re.search(r"<Message>([^<]*)</Message>", raw)
    detail = message.group(1) if message else (raw.strip()[:200] or str(error.reason))
    return ApiError(error.code, code.group(1) if code else "storage_error", f"{what}: {detail}")


def api_error_from_http(error: urllib.error.HTTPError) -> ApiError:
    """The contract's error body (``{"error": {code, message, details}}``) as an ApiError."""
    raw = error.read()
    try:
        payload = json.loads(raw)["error"]
        return ApiError(error.code, payload.get("code", "error"), payload.get("message", ""), payload.get("details"))
    except (ValueError, KeyError, TypeError):
        return ApiError(error.code, "http_error", raw.decode(errors="replace")[:300] or str(error.reason))


def _host(url: str) -> str:
    return url.split("?", 1)[0]
