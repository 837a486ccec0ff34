"""Proofs: the files that back an agent's claims (screenshots, logs, test results, reports, diffs).

Their declaration, how large each type may be, the content types each type may have and how it
is served (raster images inline, everything else as an attachment), and which proofs a stage still
needs. The server builds every S3 key, readable in the S3 console::

    projects/{project}/runs/{run}/tasks/{task}/{stage}-{iteration}/{type}/{proof_id}-{filename}

Filenames must match ``[A-Za-z0-9._-]{1,128}`` and may not contain ``..`` (so no path separators,
spaces, control characters or NUL can reach a key).
"""

from enum import Enum
import re
from typing import Iterable, Mapping, Optional

from pydantic import Field, field_validator

from .base import DomainModel
from .entities import StageRecord
from .errors import RuleViolationError
from .fields import STRICT_INPUT
from .roles import ProofType

MB = 1024 * 1024


class ProofStatus(str, Enum):
    pending = "pending"
    stored = "stored"


FILENAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# type/subtype with optional simple parameters, e.g. "text/plain; charset=utf-8"
CONTENT_TYPE_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
    r"(; ?[A-Za-z0-9_-]{1,32}=[A-Za-z0-9._-]{1,64}){0,3}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

DEFAULT_SIZE_LIMITS: dict[str, int] = {"default": 50 * MB, ProofType.screenshot.value: 10 * MB}
UPLOAD_EXPIRES_SECONDS = 900      # the presigned POST: 15 minutes at most
DOWNLOAD_EXPIRES_SECONDS = 300    # the 302 of /download
IMAGE_URL_EXPIRES_SECONDS = 600   # screenshots in the context, for the next agent or a vision model


def check_filename(value: str) -> str:
    if not FILENAME_RE.fullmatch(value) or ".." in value or value in (".",):
        raise ValueError("filename must be 1-128 characters of letters, digits, '.', '_' or '-', without '..' "
                         "(no slashes, backslashes, spaces or control characters); e.g. test-report.xml")
    return value


class ProofCreate(DomainModel):
    """The body of ``POST /tasks/{task_id}/proofs``: what the agent is about to upload."""

    model_config = STRICT_INPUT
    type: ProofType
    filename: str = Field(min_length=1, max_length=128)
    content_type: str = Field(min_length=3, max_length=255)
    size: int = Field(ge=1, description="bytes; the upload must be exactly this size")
    sha256: str = Field(min_length=64, max_length=64, description="hex sha256 of the file")

    _filename = field_validator("filename")(lambda cls, v: check_filename(v))

    @field_validator("content_type")
    @classmethod
    def _content_type(cls, value: str) -> str:
        if not CONTENT_TYPE_RE.fullmatch(value):
            raise ValueError("content_type must be a MIME type such as text/plain, image/png or "
                             "application/json (optionally with parameters like '; charset=utf-8')")
        return value

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str) -> str:
        lowered = value.lower()
        if not SHA256_RE.fullmatch(lowered):
            raise ValueError("sha256 must be the 64 hex digits of the file's SHA-256 digest")
        return lowered


class Proof(StageRecord):
    type: ProofType
    filename: str
    content_type: str
    size: int
    sha256: str
    s3_key: str
    status: ProofStatus
    uploaded_by: str
    created_at: str
    confirmed_at: Optional[str] = None
    s3_version_id: Optional[str] = Field(default=None, description="the object version that was checked (versioned "
                                                                   "bucket): downloads serve exactly that version")
    attached_from: Optional[str] = Field(default=None, description="the proof this one was attached from "
                                                                    "(bug reports), sharing its object")


class EmptyBody(DomainModel):
    """Routes that take no body: an empty body or ``{}``; anything else is refused."""

    model_config = STRICT_INPUT


class UploadForm(DomainModel):
    url: str
    fields: dict[str, str]
    expires_at: str


class ProofUpload(DomainModel):
    """The answer to ``POST /tasks/{task_id}/proofs``."""

    proof: Proof
    upload: UploadForm


def proof_object_key(*, project_id: str, run_id: str, task_id: str, stage: str, iteration: int,
                     proof_type: str, proof_id: str, filename: str) -> str:
    check_filename(filename)
    return (f"projects/{project_id}/runs/{run_id}/tasks/{task_id}/{stage}-{iteration}/{proof_type}/"
            f"{proof_id}-{filename}")


def size_limit(proof_type: ProofType | str, limits: Mapping[str, int]) -> int:
    """The largest allowed proof of ``proof_type``: its own limit, else the default."""
    merged = {**DEFAULT_SIZE_LIMITS, **limits}
    return int(merged.get(ProofType(proof_type).value, merged["default"]))


#
# What a proof may declare, per type, and how a stored proof is served back. Browsers render what
# a URL's Content-Type says, so the declared type is never trusted to be harmless: only raster
# images (never SVG, which carries script) are ever served inline, with their exact image type;
# everything else is an attachment with a type no browser renders.

RASTER_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_TEXT_LIKE = frozenset({"application/json", "application/sarif+json", "application/x-ndjson", "application/xml"})
_ARCHIVES = frozenset({"application/gzip", "application/x-gzip", "application/zip"})
_ANY = "any"
# The media types (type/subtype, without parameters) each proof type may declare; ``other`` takes
# any well-formed type (still never served inline unless it is a raster image).
ALLOWED_CONTENT_TYPES: dict[ProofType, frozenset[str] | str] = {
    ProofType.screenshot: RASTER_IMAGE_TYPES,
    ProofType.log: frozenset({"text/plain", "text/x-log", "text/csv", "application/json", "application/x-ndjson",
                              "application/xml", "text/xml", "application/octet-stream"}) | _ARCHIVES,
    ProofType.code_diff: frozenset({"text/plain", "text/x-diff", "text/x-patch", "application/octet-stream"}),
    ProofType.test_result: frozenset({"application/xml", "text/xml", "application/json", "text/plain",
                                      "application/octet-stream"}),
    ProofType.report: frozenset({"application/json", "application/sarif+json", "text/plain", "text/markdown",
                                 "text/csv", "application/xml", "text/xml", "application/pdf",
                                 "application/octet-stream"}) | _ARCHIVES,
    ProofType.other: _ANY,
}
ATTACHMENT_TYPE = "application/octet-stream"
TEXT_ATTACHMENT_TYPE = "text/plain; charset=utf-8"


def media_type(content_type: str) -> str:
    """``type/subtype`` of a Content-Type, lower case, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def allowed_content_types(proof_type: ProofType | str) -> Optional[list[str]]:
    """The media types a proof of ``proof_type`` may declare (sorted), or None when any is allowed."""
    allowed = ALLOWED_CONTENT_TYPES[ProofType(proof_type)]
    return None if allowed == _ANY else sorted(allowed)


def check_proof_content_type(proof_type: ProofType | str, content_type: str) -> None:
    """RuleViolationError (``content_type_not_allowed``) unless ``content_type`` fits the proof type."""
    kind = ProofType(proof_type)
    allowed = allowed_content_types(kind)
    if allowed is None or media_type(content_type) in allowed:
        return
    hint = " (SVG is refused: it can carry script)" if media_type(content_type) == "image/svg+xml" else ""
    raise RuleViolationError(
        f"a {kind.value} proof cannot be {media_type(content_type)}{hint}; a {kind.value} proof may be "
        f"{', '.join(allowed)}. Declare the file's real type, or use type other for anything else",
        code="content_type_not_allowed",
        details=[{"loc": ["content_type"], "type": kind.value, "content_type": content_type, "allowed": allowed}])


def inline_image_type(content_type: str) -> Optional[str]:
    """The exact raster image type a proof may be shown inline as, or None (served as an attachment)."""
    media = media_type(content_type)
    return media if media in RASTER_IMAGE_TYPES else None


def attachment_content_type(content_type: str) -> str:
    """The Content-Type a download is served with: its image type for raster images, plain text for
    text, else ``application/octet-stream`` — never a type a browser would render as a page."""
    media = media_type(content_type)
    if media in RASTER_IMAGE_TYPES:
        return media
    if media.startswith("text/") or media in _TEXT_LIKE or media.endswith(("+json", "+xml")):
        return TEXT_ATTACHMENT_TYPE
    return ATTACHMENT_TYPE


def missing_proofs(required: Iterable[ProofType | str], proofs: Iterable[Proof], *, stage: str,
                   iteration: int) -> list[str]:
    """The required proof types with no stored proof of the given stage and iteration.

    Proofs attached from elsewhere (a bug report's screenshots) prove nothing about this stage's work.
    """
    present = {p.type.value for p in proofs
               if p.status == ProofStatus.stored and p.stage == stage and p.iteration == iteration
               and not p.attached_from}
    wanted = [ProofType(r).value for r in required]
    return [r for r in dict.fromkeys(wanted) if r not in present]


# ---- a stored proof read as text (GET /proofs/{proof_id}/text)

TEXT_LIMIT = 512 * 1024


class ProofText(DomainModel):
    proof_id: str
    content_type: str
    size: int
    text: Optional[str] = None       # None: not text (an image, an archive, bytes that are not UTF-8)
    truncated: bool = False          # the text is the first TEXT_LIMIT bytes of a larger proof
    download_url: str                # a short-lived presigned GET, always an attachment


def may_be_text(content_type: str) -> bool:
    """Whether a proof's bytes are worth reading as text: a declared text type, or bytes declared
    only as octets (never an image)."""
    return inline_image_type(content_type) is None and (
        attachment_content_type(content_type) == TEXT_ATTACHMENT_TYPE or content_type.startswith("application/octet"))


def text_of(data: bytes, cut: bool, *, lenient: bool) -> Optional[str]:
    """UTF-8 text, or None for bytes that are not text. A cut may split the last character; a
    declared text type (``lenient``) keeps undecodable bytes as U+FFFD, anything else must decode
    cleanly."""
    if b"\x00" in data and not lenient:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        if cut and error.start >= len(data) - 3:
            return data[:error.start].decode("utf-8", errors="replace")
        return data.decode("utf-8", errors="replace") if lenient else None
