"""Evidence of work: handoffs between agents, proofs stored in S3, findings, bug reports.

Pure models and rules (no boto3): the request bodies, the entities as the API returns them, the
handoff lifecycle, where a proof object lives in the bucket, how large a proof may be, and which
proofs a stage still misses.

Handoff lifecycle
-----------------
``created → accepted → completed`` and ``created | accepted → failed``; anything else is a
conflict (409). Each transition is kept, newest last, in the handoff's ``transitions``.

Proof objects
-------------
The server builds every S3 key, readable in the S3 console::

    projects/{project}/runs/{run}/tasks/{task}/{stage}-{iteration}/{type}/{proof_id}-{filename}

Filenames must match ``[A-Za-z0-9._-]{1,128}`` and may not contain ``..`` (so no path
separators, spaces, control characters or NUL can reach a key).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, Iterable, Mapping, Optional, Sequence

from pydantic import BaseModel, Field, field_validator, model_validator

from .errors import ConflictError, RuleViolationError
from .entities import Project, Run, Task
from .enums import Role
from .fields import STRICT_INPUT, LongText, Title
from .roles import ProofType

MB = 1024 * 1024

# --------------------------------------------------------------------------- shared enums


class Severity(str, Enum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"


SEVERITY_RANK: dict[Severity, int] = {Severity.critical: 4, Severity.high: 3, Severity.medium: 2, Severity.low: 1}

# Priority of the task a finding or bug becomes (0–10, higher is claimed first).
SEVERITY_PRIORITY: dict[Severity, int] = {Severity.critical: 10, Severity.high: 10, Severity.medium: 7,
                                          Severity.low: 5}

DEFAULT_FINDING_THRESHOLD = Severity.medium


def at_or_above(severity: Severity, threshold: Severity) -> bool:
    return SEVERITY_RANK[severity] >= SEVERITY_RANK[threshold]


# --------------------------------------------------------------------------- handoffs


class HandoffStatus(str, Enum):
    created = "created"
    accepted = "accepted"
    completed = "completed"
    failed = "failed"


class Confidence(str, Enum):
    high = "high"
    medium = "medium"
    low = "low"


class HandoffAction(str, Enum):
    accept = "accept"
    complete = "complete"
    fail = "fail"


_TRANSITIONS: dict[HandoffAction, tuple[frozenset[HandoffStatus], HandoffStatus]] = {
    HandoffAction.accept: (frozenset({HandoffStatus.created}), HandoffStatus.accepted),
    HandoffAction.complete: (frozenset({HandoffStatus.accepted}), HandoffStatus.completed),
    HandoffAction.fail: (frozenset({HandoffStatus.created, HandoffStatus.accepted}), HandoffStatus.failed),
}


def next_handoff_status(current: HandoffStatus, action: HandoffAction) -> HandoffStatus:
    """The status ``action`` leads to from ``current``, or ConflictError when it is not allowed."""
    allowed_from, target = _TRANSITIONS[action]
    if current not in allowed_from:
        hint = "; accept it first" if action == HandoffAction.complete and current == HandoffStatus.created else ""
        raise ConflictError(f"a {current.value} handoff cannot become {target.value} (allowed: created→accepted→"
                            f"completed, created|accepted→failed){hint}", code="illegal_transition")
    return target


class WorkDone(BaseModel):
    model_config = STRICT_INPUT
    ref: str = Field(min_length=1, max_length=500, description="commit, file, PR or URL the work is in")
    description: str = Field(default="", max_length=2000)


class Decision(BaseModel):
    model_config = STRICT_INPUT
    choice: str = Field(min_length=1, max_length=1000)
    alternatives: list[str] = Field(default_factory=list, max_length=20)
    reason: str = Field(default="", max_length=2000)

    @field_validator("alternatives")
    @classmethod
    def _short(cls, values: list[str]) -> list[str]:
        if any(len(v) > 1000 for v in values):
            raise ValueError("each alternative may be at most 1000 characters")
        return values


def check_proof_ids(values: list[str]) -> list[str]:
    """Proof ids cited by a handoff or a bug report: short, and each at most once."""
    if any(len(v) > 64 for v in values):
        raise ValueError("proof ids are at most 64 characters")
    if len(set(values)) != len(values):
        raise ValueError("proof_ids lists a proof twice")
    return values


def _check_items(values: list[str], what: str, limit: int = 2000) -> list[str]:
    if any(not v.strip() or len(v) > limit for v in values):
        raise ValueError(f"each of {what} must be non-empty text of at most {limit} characters")
    return values


class HandoffCreate(BaseModel):
    """The body of ``POST /tasks/{task_id}/handoffs``: the document one agent leaves the next."""

    model_config = STRICT_INPUT
    from_role: Role
    to_role: Role
    summary: str = Field(min_length=1, max_length=4000)
    work_done: list[WorkDone] = Field(default_factory=list, max_length=100)
    decisions: list[Decision] = Field(default_factory=list, max_length=50)
    notes_for_next: LongText = ""
    learnings: list[str] = Field(default_factory=list, max_length=50)
    open_questions: list[str] = Field(default_factory=list, max_length=50)
    resume_prompt: LongText = ""
    confidence: Confidence
    proof_ids: list[str] = Field(default_factory=list, max_length=50)

    _learnings = field_validator("learnings")(lambda cls, v: _check_items(v, "learnings"))
    _questions = field_validator("open_questions")(lambda cls, v: _check_items(v, "open_questions"))

    _proof_ids = field_validator("proof_ids")(lambda cls, v: check_proof_ids(v))


class HandoffNote(BaseModel):
    """The body of ``POST /handoffs/{id}/accept|complete|fail``."""

    model_config = STRICT_INPUT
    notes: str = Field(default="", max_length=4000)


class HandoffTransition(BaseModel):
    status: HandoffStatus
    at: str
    by: str
    notes: str = ""


class Handoff(BaseModel):
    id: str
    task_id: str
    run_id: str
    project_id: str
    stage: str
    iteration: int
    from_role: Role
    to_role: Role
    summary: str
    work_done: list[WorkDone] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    notes_for_next: str = ""
    learnings: list[str] = Field(default_factory=list)
    open_questions: list[str] = Field(default_factory=list)
    resume_prompt: str = ""
    confidence: Confidence
    proof_ids: list[str] = Field(default_factory=list)
    status: HandoffStatus = HandoffStatus.created
    transitions: list[HandoffTransition] = Field(default_factory=list)
    created_by: str
    created_at: str
    updated_at: str
    version: int = 1


# --------------------------------------------------------------------------- proofs


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


class ProofCreate(BaseModel):
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


class Proof(BaseModel):
    id: str
    task_id: str
    run_id: str
    project_id: str
    stage: str
    iteration: int
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


class EmptyBody(BaseModel):
    """Routes that take no body: an empty body or ``{}``; anything else is refused."""

    model_config = STRICT_INPUT


class UploadForm(BaseModel):
    url: str
    fields: dict[str, str]
    expires_at: str


class ProofUpload(BaseModel):
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


# --------------------------------------------------------------------------- proof content types
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


# --------------------------------------------------------------------------- findings and bugs


class ReportFormat(str, Enum):
    security_report = "security_report"   # {findings: [...]}, or a scanner's SARIF / bandit JSON
    bugs = "bugs"                         # {bugs: [...]}
    generic = "generic"                   # any of the formats below, recognised by its shape
    sarif = "sarif"                       # SARIF 2.1.0 (semgrep, CodeQL, trivy, GitHub code scanning, bandit)
    bandit = "bandit"                     # bandit -f json


class FindingsReport(BaseModel):
    """The body of ``POST /tasks/{task_id}/findings``: the tool's JSON inline (``report``, an object,
    or the JSON text as a string), or a stored proof holding it (``proof_id``) for reports larger
    than a request body may be."""

    model_config = STRICT_INPUT
    format: ReportFormat = ReportFormat.generic
    report: Optional[Any] = None
    proof_id: Optional[str] = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _one_source(self) -> "FindingsReport":
        if (self.report is None) == (self.proof_id is None):
            raise ValueError("give exactly one of report (the tool's JSON) or proof_id (a stored proof holding it)")
        return self


class FindingsResult(BaseModel):
    verdict: str = Field(description="fail when any finding is critical or high")
    counts: dict[str, int] = Field(description="findings per severity")
    created_tasks: list[Task] = Field(description="the fix tasks created, most severe first")
    format: str = Field(description="the shape recognised: sarif, bandit, security_report or bugs")
    threshold: Severity
    findings: int
    below_threshold: int
    already_reported: int = Field(description="findings that already have a fix task in this run")
    over_ceiling: int = Field(description="fix tasks not created because of the run's max_fix_tasks")


class BugReport(BaseModel):
    """The body of ``POST /projects/{project_id}/bugs``."""

    model_config = STRICT_INPUT
    title: Title
    description: LongText = ""
    severity: Severity = Severity.medium
    run_id: Optional[str] = Field(default=None, max_length=64)
    proof_ids: list[str] = Field(default_factory=list, max_length=20)

    _proof_ids = field_validator("proof_ids")(lambda cls, v: check_proof_ids(v))


def counts_by_severity(severities: Sequence[Severity]) -> dict[str, int]:
    counts = {s.value: 0 for s in Severity}
    for severity in severities:
        counts[severity.value] += 1
    return counts


# --------------------------------------------------------------------------- the task context


class RoleView(BaseModel):
    role: Role
    version: int
    digest: str
    prompt: str
    required_proofs: list[ProofType] = Field(default_factory=list)


class ProofView(Proof):
    url: Optional[str] = Field(default=None, description="short-lived inline URL of a stored raster image (png, "
                                                         "jpeg, gif, webp); null for anything else")
    url_expires_at: Optional[str] = None


class Attempt(BaseModel):
    """A stage job of the task (its Step Functions token is never shown)."""

    job_id: str
    dispatch: int
    stage: str
    iteration: int
    attempt: int = 1
    role: Optional[str] = None
    role_version: Optional[int] = None
    role_digest: Optional[str] = None
    executor: Optional[str] = None
    status: Optional[str] = None
    created_at: Optional[str] = None
    launched_at: Optional[str] = None


class StageRequirements(BaseModel):
    stage: str
    iteration: int
    required_proofs: list[ProofType] = Field(default_factory=list)
    missing: list[ProofType] = Field(default_factory=list, description="required, not stored yet for this "
                                                                       "stage and iteration")


class TaskContext(BaseModel):
    """``GET /tasks/{task_id}/context``: everything the next agent needs, newest first."""

    task: Task
    run: Run
    project: Project
    role: Optional[RoleView] = Field(description="the role config version the run pinned for the task's stage "
                                                 "(null once the task is complete)")
    handoffs: list[Handoff]
    proofs: list[ProofView]
    attempts: list[Attempt]
    requirements: StageRequirements
    handoffs_next_cursor: Optional[str] = Field(
        default=None, description="more (older) handoffs: GET /tasks/{task_id}/handoffs?cursor=…")
    proofs_next_cursor: Optional[str] = Field(
        default=None, description="more (older) proofs: GET /tasks/{task_id}/proofs?cursor=…")
