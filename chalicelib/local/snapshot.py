"""The local stack's saved state: what ``make up`` writes when it stops and reads when it starts.

moto keeps everything in memory. When the stack stops it saves its tables' items, its bucket's
object versions and its queues' messages under ``.baton/state/``; when it starts it puts them back
into the new moto before the API answers (``make up FRESH=1`` / ``baton up --fresh`` skip that).
Everything is read and written through boto3 against the moto server (scans and listings are fine
here: this is the local tool, not a request path), with one exception: S3 offers no call that
chooses an object's version id, and proofs name the version they checked, so ``moto_version_pinner``
gives each restored version back its id (and its LastModified) inside the moto of this process.

Step Functions executions cannot be saved; after a restore the sweeper's reconciler restarts the
executions of tasks and gates that were in flight (``LocalStack`` calls it). A restored SQS
message is new to SQS (a new MessageId, a receive count of 0, no remaining delay): every consumer
is idempotent.

On disk (format 1)
------------------
::

    .baton/state/                          0700, like every directory below
      CURRENT                              one line: the name of the current snapshot directory
      LOCK                                 held (flock) by the running stack; holds its pid
      snapshot-<UTC time>-<hex>/
        manifest.json                      {"format": 1, "created_at", "info", "tables", "buckets",
                                            "queues", "admin_key", "files"}
        admin-key                          the admin key's plaintext (0600, as is every file here)
        tables/<table>.jsonl               one item a line, DynamoDB JSON: {"pk": {"S": "..."}}, with
                                           B and BS values in base64 (as DynamoDB's own export)
        buckets/<bucket>.jsonl             one object version a line, oldest first per key:
                                           {"key", "version_id", "last_modified", "delete_marker",
                                            "blob" (the body's sha256), "size", "content_type",
                                            "content_disposition", "content_encoding",
                                            "content_language", "cache_control", "metadata", "tags",
                                            "sse", "sse_kms_key_id", "bucket_key_enabled"}
        blobs/<sha256>                     object bodies, stored once per content
        queues/<queue>.jsonl               one message a line, in receive order: {"body",
                                           "attributes" (MessageAttributes; BinaryValue in base64),
                                           "system": {"AWSTraceHeader", "MessageGroupId",
                                           "MessageDeduplicationId"}, "sent_at", "receive_count"}
      snapshot-.../                        the snapshot before the current one, kept as a backup (to go
                                           back to it, stop the stack and write its name into CURRENT)
      .tmp-<hex>/                          a snapshot being written (or one a crash interrupted)

``manifest.json`` maps ``tables``/``buckets``/``queues`` by resource name to their file and count,
and ``files`` maps every file of the snapshot (the manifest aside) to its sha256 and size: loading
checks them all before anything is restored, so a truncated or edited snapshot is refused with the
name of the file, never half-restored.

Writing is atomic: the new snapshot is written into ``.tmp-<hex>/`` (every file and directory
fsynced), renamed to ``snapshot-.../``, and only then does ``CURRENT`` (written to a temporary file,
fsynced, renamed over the old one) point at it. A crash or an error at any point before that last
rename leaves ``CURRENT`` on the previous snapshot, intact; the leftovers are removed by the next
save. A snapshot whose ``format`` is not this module's ``FORMAT`` is refused (start with
``FRESH=1``): a format change bumps ``FORMAT`` and says here what changed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping, Optional

FORMAT = 1
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
ADMIN_KEY = "admin-key"
LOCK = "LOCK"
SNAPSHOT_PREFIX = "snapshot-"
TMP_PREFIX = ".tmp-"
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_SNAPSHOT_NAME = re.compile(r"^snapshot-[0-9TZ]+-[0-9a-f]{8}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024
FRESH_HINT = "`make up FRESH=1` (or `baton up --fresh`)"   # how to start empty instead

# Object fields kept with each version: snapshot field -> (get_object response key, put_object parameter).
_OBJECT_FIELDS = {
    "content_type": ("ContentType", "ContentType"),
    "content_disposition": ("ContentDisposition", "ContentDisposition"),
    "content_encoding": ("ContentEncoding", "ContentEncoding"),
    "content_language": ("ContentLanguage", "ContentLanguage"),
    "cache_control": ("CacheControl", "CacheControl"),
    "sse": ("ServerSideEncryption", "ServerSideEncryption"),
    "sse_kms_key_id": ("SSEKMSKeyId", "SSEKMSKeyId"),
    "bucket_key_enabled": ("BucketKeyEnabled", "BucketKeyEnabled"),
}


class SnapshotError(Exception):
    """A snapshot could not be read, restored or written; the message says what and where."""


class StateInUse(SnapshotError):
    """Another running stack holds the state directory (it would save over this one's state)."""


class StateLock:
    """Held by a running stack for its state directory (``LOCK``, an advisory ``flock``): a second stack
    on the same directory is refused instead of both saving over each other when they stop. The
    kernel releases it when the process ends, however it ends."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / LOCK
        self._fd: Optional[int] = None

    def acquire(self) -> "StateLock":
        import fcntl

        _private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateInUse(f"another local stack (pid {holder}) is using {self.path.parent}: stop it first, or "
                             "give this one a state directory of its own") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)   # closing the descriptor releases the flock
            self._fd = None


# --------------------------------------------------------------------------- values


def encode_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A low-level DynamoDB item (boto3 client: bytes for B) as JSON-safe DynamoDB JSON."""
    return {name: _encode_value(value) for name, value in item.items()}


def decode_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of ``encode_item``: what boto3's client takes back."""
    return {name: _decode_value(value) for name, value in item.items()}


def _encode_value(value: Mapping[str, Any]) -> dict[str, Any]:
    (kind, inner), = value.items()
    if kind == "B":
        return {"B": base64.b64encode(bytes(inner)).decode("ascii")}
    if kind == "BS":
        return {"BS": [base64.b64encode(bytes(b)).decode("ascii") for b in inner]}
    if kind == "M":
        return {"M": {k: _encode_value(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_encode_value(v) for v in inner]}
    return {kind: inner}


def _decode_value(value: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ValueError(f"not a DynamoDB attribute value: {value!r:.80}")
    (kind, inner), = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner, validate=True)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b, validate=True) for b in inner]}
    if kind == "M":
        return {"M": {k: _decode_value(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_decode_value(v) for v in inner]}
    if kind not in ("S", "N", "BOOL", "NULL", "SS", "NS"):
        raise ValueError(f"unknown DynamoDB type {kind!r}")
    return {kind: inner}


def encode_message_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in attributes.items():
        kept = {k: v for k, v in value.items() if k in ("DataType", "StringValue")}
        if "BinaryValue" in value:
            kept["BinaryValue"] = base64.b64encode(bytes(value["BinaryValue"])).decode("ascii")
        out[name] = kept
    return out


def decode_message_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in attributes.items():
        kept = dict(value)
        if "BinaryValue" in kept:
            kept["BinaryValue"] = base64.b64decode(kept["BinaryValue"], validate=True)
        out[name] = kept
    return out


# --------------------------------------------------------------------------- files


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _safe_name(kind: str, name: str) -> str:
    if not _NAME.match(name) or name in (".", ".."):
        raise SnapshotError(f"{kind} name {name!r} cannot be a file name in a snapshot")
    return name


class _HashingFile:
    """A new private file (0600, never an existing one) whose sha256 and size are kept as it is written."""

    def __init__(self, path: Path):
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.handle = os.fdopen(fd, "wb")
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.digest.update(data)
        self.size += len(data)

    def line(self, value: Any) -> None:
        self.write(json.dumps(value, separators=(",", ":"), sort_keys=True).encode() + b"\n")

    def close(self) -> dict[str, Any]:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return {"sha256": self.digest.hexdigest(), "bytes": self.size}

    def discard(self) -> None:
        if not self.handle.closed:
            self.handle.close()


def _file_digest(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# --------------------------------------------------------------------------- writing


@dataclass
class ObjectVersion:
    """One version of an object (or a delete marker) as the writer takes it: its fields (see the
    module docstring) and, for a version with content, a callable that opens its body."""

    fields: dict[str, Any]
    open_body: Optional[Callable[[], BinaryIO]] = None


class SnapshotWriter:
    """Writes one snapshot under ``state_dir``; it becomes the current one only at ``commit``.

    ``with SnapshotWriter(state_dir) as writer: writer.table(...); ...; writer.commit(info)``: an
    exception inside the block removes what was written and leaves ``CURRENT`` as it was.
    """

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.tmp: Optional[Path] = None
        self.manifest: dict[str, Any] = {"format": FORMAT, "tables": {}, "buckets": {}, "queues": {},
                                         "admin_key": None, "files": {}}
        self._dirs: set[Path] = set()
        self.committed: Optional[Path] = None

    def __enter__(self) -> "SnapshotWriter":
        _private_dir(self.state_dir)
        self.tmp = self.state_dir / f"{TMP_PREFIX}{secrets.token_hex(4)}"
        self.tmp.mkdir(mode=0o700)
        self._dirs.add(self.tmp)
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if self.tmp is not None and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _new(self, relative: str) -> _HashingFile:
        if self.tmp is None:
            raise RuntimeError("use SnapshotWriter in a with block, and commit once")
        path = self.tmp / relative
        if path.parent not in self._dirs:
            _private_dir(path.parent)
            self._dirs.add(path.parent)
        return _HashingFile(path)

    def _lines(self, relative: str, rows: Iterable[Any]) -> int:
        out = self._new(relative)
        count = 0
        try:
            for row in rows:
                out.line(row)
                count += 1
        except BaseException:
            out.discard()
            raise
        self.manifest["files"][relative] = out.close()
        return count

    def table(self, name: str, items: Iterable[Mapping[str, Any]]) -> int:
        """The table's items (low-level DynamoDB items, as boto3's client returns them)."""
        relative = f"tables/{_safe_name('table', name)}.jsonl"
        count = self._lines(relative, (encode_item(item) for item in items))
        self.manifest["tables"][name] = {"file": relative, "items": count}
        return count

    def queue(self, name: str, messages: Iterable[Mapping[str, Any]]) -> int:
        """The queue's messages: dicts of the fields in the module docstring (``attributes`` raw)."""
        relative = f"queues/{_safe_name('queue', name)}.jsonl"
        rows = ({**message, "attributes": encode_message_attributes(message.get("attributes") or {})}
                for message in messages)
        count = self._lines(relative, rows)
        self.manifest["queues"][name] = {"file": relative, "messages": count}
        return count

    def bucket(self, name: str, versions: Iterable[ObjectVersion]) -> int:
        """The bucket's object versions, oldest first per key; bodies are stored once per content."""
        relative = f"buckets/{_safe_name('bucket', name)}.jsonl"
        count = self._lines(relative, (self._version_row(version) for version in versions))
        self.manifest["buckets"][name] = {"file": relative, "versions": count}
        return count

    def _version_row(self, version: ObjectVersion) -> dict[str, Any]:
        row = dict(version.fields)
        if row.get("delete_marker"):
            row.pop("blob", None)
            return row
        if version.open_body is None:
            raise SnapshotError(f"object {row.get('key')!r} version {row.get('version_id')!r} has no body")
        part = self._new(f"blobs/.part-{secrets.token_hex(6)}")
        try:
            body = version.open_body()
            try:
                for chunk in iter(lambda: body.read(_CHUNK), b""):
                    part.write(chunk)
            finally:
                body.close()
        except BaseException:
            part.discard()
            part.path.unlink(missing_ok=True)
            raise
        stat = part.close()
        relative = f"blobs/{stat['sha256']}"
        if relative in self.manifest["files"]:
            part.path.unlink()
        else:
            os.rename(part.path, self.tmp / relative)  # type: ignore[operator]
            self.manifest["files"][relative] = stat
        row.update(blob=stat["sha256"], size=stat["bytes"])
        return row

    def admin_key(self, key: str) -> None:
        out = self._new(ADMIN_KEY)
        out.write(key.encode())
        self.manifest["files"][ADMIN_KEY] = out.close()
        self.manifest["admin_key"] = ADMIN_KEY

    def commit(self, info: Optional[Mapping[str, Any]] = None) -> Path:
        """Make this snapshot the current one (atomically); returns its directory. The snapshot that
        was current is kept as the previous one; older ones and interrupted writes are removed."""
        if self.tmp is None:
            raise RuntimeError("use SnapshotWriter in a with block, and commit once")
        now = dt.datetime.now(dt.timezone.utc)
        self.manifest["created_at"] = now.isoformat(timespec="seconds").replace("+00:00", "Z")
        self.manifest["info"] = dict(info or {})
        manifest = self._new(MANIFEST)
        manifest.write(json.dumps(self.manifest, indent=2, sort_keys=True).encode() + b"\n")
        manifest.close()
        for directory in sorted(self._dirs, key=lambda p: len(p.parts), reverse=True):
            _fsync_dir(directory)
        name = f"{SNAPSHOT_PREFIX}{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"
        final = self.state_dir / name
        previous = current_name(self.state_dir)
        os.rename(self.tmp, final)
        self.tmp = None
        _fsync_dir(self.state_dir)
        _point_current(self.state_dir, name)
        self.committed = final
        _remove_stale(self.state_dir, keep={name, previous})
        return final


def current_name(state_dir: Path) -> Optional[str]:
    """The name in ``CURRENT``, or None when there is none (no snapshot yet)."""
    try:
        text = (Path(state_dir) / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise SnapshotError(f"{Path(state_dir) / CURRENT} cannot be read: {error}") from None
    if not _SNAPSHOT_NAME.match(text):
        raise SnapshotError(f"{Path(state_dir) / CURRENT} does not name a snapshot (it holds {text[:80]!r})")
    return text


def _point_current(state_dir: Path, name: str) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}current-", dir=state_dir)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(name + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o600)
        os.replace(tmp_name, state_dir / CURRENT)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(state_dir)


def _remove_stale(state_dir: Path, keep: set[Optional[str]]) -> None:
    for entry in state_dir.iterdir():
        if entry.name.startswith(TMP_PREFIX) or (entry.name.startswith(SNAPSHOT_PREFIX) and entry.name not in keep):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


# --------------------------------------------------------------------------- reading


@dataclass
class Snapshot:
    """A snapshot read back and checked (``load``): every file's checksum, every line's JSON."""

    path: Path
    manifest: dict[str, Any]
    admin_key: Optional[str] = None

    @property
    def created_at(self) -> str:
        return str(self.manifest.get("created_at", "?"))

    @property
    def tables(self) -> dict[str, int]:
        return {name: int(entry["items"]) for name, entry in self.manifest["tables"].items()}

    @property
    def buckets(self) -> dict[str, int]:
        return {name: int(entry["versions"]) for name, entry in self.manifest["buckets"].items()}

    @property
    def queues(self) -> dict[str, int]:
        return {name: int(entry["messages"]) for name, entry in self.manifest["queues"].items()}

    def _rows(self, relative: str) -> Iterator[dict[str, Any]]:
        with open(self.path / relative, "rb") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    row = json.loads(line)
                except ValueError as error:
                    raise SnapshotError(f"{self.path / relative}, line {number}: not JSON ({error})") from None
                if not isinstance(row, dict):
                    raise SnapshotError(f"{self.path / relative}, line {number}: not a JSON object")
                yield row

    def items(self, table: str) -> Iterator[dict[str, Any]]:
        """The table's items, decoded for boto3's client."""
        relative = self.manifest["tables"][table]["file"]
        for number, row in enumerate(self._rows(relative), 1):
            try:
                yield decode_item(row)
            except (ValueError, TypeError, AttributeError) as error:
                raise SnapshotError(f"{self.path / relative}, line {number}: not a DynamoDB item ({error})") from None

    def versions(self, bucket: str) -> Iterator[dict[str, Any]]:
        relative = self.manifest["buckets"][bucket]["file"]
        for number, row in enumerate(self._rows(relative), 1):
            if not isinstance(row.get("key"), str) or not isinstance(row.get("version_id"), str):
                raise SnapshotError(f"{self.path / relative}, line {number}: an object version needs a key "
                                    "and a version_id")
            if not row.get("delete_marker"):
                blob = row.get("blob")
                if not isinstance(blob, str) or f"blobs/{blob}" not in self.manifest["files"]:
                    raise SnapshotError(f"{self.path / relative}, line {number}: its body (blob {blob!r}) is not "
                                        "in the snapshot")
            yield row

    def blob(self, sha256: str) -> Path:
        return self.path / "blobs" / sha256

    def messages(self, queue: str) -> Iterator[dict[str, Any]]:
        relative = self.manifest["queues"][queue]["file"]
        for number, row in enumerate(self._rows(relative), 1):
            if not isinstance(row.get("body"), str):
                raise SnapshotError(f"{self.path / relative}, line {number}: a message needs a body")
            try:
                row["attributes"] = decode_message_attributes(row.get("attributes") or {})
            except (ValueError, TypeError, AttributeError) as error:
                raise SnapshotError(f"{self.path / relative}, line {number}: bad message attributes ({error})") from None
            yield row

    def check(self) -> None:
        """Read every row once (checksums were checked by ``load``): a bad line fails here, before
        anything is restored."""
        for table in self.tables:
            for _ in self.items(table):
                pass
        for bucket in self.buckets:
            for _ in self.versions(bucket):
                pass
        for queue in self.queues:
            for _ in self.messages(queue):
                pass


def load(state_dir: Path) -> Optional[Snapshot]:
    """The current snapshot under ``state_dir``, checked; None when no snapshot was saved yet.

    Raises ``SnapshotError`` (saying what is wrong, and how to start empty) for a snapshot of
    another format, a missing or changed file, or a file that does not parse."""
    state_dir = Path(state_dir)
    name = current_name(state_dir)
    if name is None:
        return None
    path = state_dir / name
    if not path.is_dir():
        raise SnapshotError(f"{state_dir / CURRENT} names {name}, which is not there")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise SnapshotError(f"{path / MANIFEST} is missing") from None
    except (OSError, ValueError) as error:
        raise SnapshotError(f"{path / MANIFEST} cannot be read: {error}") from None
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise SnapshotError(f"{path / MANIFEST} has no format field: not a snapshot of the local stack")
    found = manifest["format"]
    if found != FORMAT:
        age = "an older" if isinstance(found, int) and found < FORMAT else "another"
        raise SnapshotError(f"the snapshot {path} was written by {age} version of Baton (format {found!r}; this one "
                            f"reads format {FORMAT}) and cannot be restored")
    try:
        files = manifest["files"]
        for section in ("tables", "buckets", "queues"):
            for resource, entry in manifest[section].items():
                _safe_name(section, resource)
                if entry["file"] not in files:
                    raise SnapshotError(f"{path / MANIFEST}: the file of {section[:-1]} {resource} is not listed")
        for relative, expected in files.items():
            target = (path / relative).resolve()
            if path.resolve() not in target.parents:
                raise SnapshotError(f"{path / MANIFEST} lists a file outside the snapshot: {relative!r}")
            if relative.startswith("blobs/") and not _SHA256.match(relative[len("blobs/"):]):
                raise SnapshotError(f"{path / MANIFEST} lists a body that is not named by its sha256: {relative!r}")
            try:
                digest, size = _file_digest(target)
            except FileNotFoundError:
                raise SnapshotError(f"{path / relative} is missing") from None
            if size != expected["bytes"] or digest != expected["sha256"]:
                raise SnapshotError(f"{path / relative} does not match its checksum in the manifest (it was changed "
                                    f"or cut short: {size} bytes, {expected['bytes']} expected)")
        admin_key = None
        if manifest.get("admin_key"):
            admin_key = (path / manifest["admin_key"]).read_text().strip() or None
    except SnapshotError:
        raise
    except (KeyError, TypeError, AttributeError, OSError) as error:
        raise SnapshotError(f"{path / MANIFEST} is not a valid manifest ({type(error).__name__}: {error})") from None
    snapshot = Snapshot(path=path, manifest=manifest, admin_key=admin_key)
    snapshot.check()
    return snapshot


# --------------------------------------------------------------------------- the stack's resources


@dataclass
class Resources:
    """What a snapshot covers: table and bucket names, and queue URLs by queue name."""

    tables: list[str] = field(default_factory=list)
    buckets: list[str] = field(default_factory=list)
    queues: dict[str, str] = field(default_factory=dict)


def _belongs(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + "-")


def discover(clients: Mapping[str, Any], prefix: str) -> Resources:
    """The tables, buckets and queues of the stack whose names start with ``prefix`` (the local
    resources are all ``<prefix>`` or ``<prefix>-<what>``), so that a resource added to
    ``infra/resources.yaml`` is saved without a change here. Queues are ordered with each one
    before its dead-letter queue: capturing a queue can move messages to its DLQ (maxReceiveCount)."""
    tables = []
    for page in clients["dynamodb"].get_paginator("list_tables").paginate():
        tables += [name for name in page.get("TableNames", []) if _belongs(name, prefix)]
    buckets = [b["Name"] for b in clients["s3"].list_buckets().get("Buckets", []) if _belongs(b["Name"], prefix)]
    sqs = clients["sqs"]
    urls = {}
    for page in sqs.get_paginator("list_queues").paginate(QueueNamePrefix=prefix):
        for url in page.get("QueueUrls", []):
            name = url.rstrip("/").rsplit("/", 1)[-1]
            if _belongs(name, prefix):
                urls[name] = url
    dead_letter_targets = set()
    for url in urls.values():
        policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"]).get(
            "Attributes", {}).get("RedrivePolicy")
        if policy:
            dead_letter_targets.add(json.loads(policy)["deadLetterTargetArn"].rsplit(":", 1)[-1])
    ordered = dict(sorted(urls.items(), key=lambda kv: (kv[0] in dead_letter_targets, kv[0])))
    return Resources(tables=sorted(tables), buckets=sorted(buckets), queues=ordered)


# --------------------------------------------------------------------------- saving


@dataclass
class Summary:
    """What a save or a restore moved."""

    items: int = 0
    versions: int = 0
    messages: int = 0
    seconds: float = 0.0
    path: Optional[Path] = None
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.items} items, {self.versions} object versions, {self.messages} queued messages"


def scan_items(dynamodb: Any, table: str) -> Iterator[dict[str, Any]]:
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        yield from page.get("Items", [])


def object_versions(s3: Any, bucket: str) -> Iterator[ObjectVersion]:
    """Every version and delete marker of the bucket, oldest first per key (S3 lists newest first)."""
    by_key: dict[str, list[tuple[dict[str, Any], bool]]] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in page.get("Versions", []):
            by_key.setdefault(entry["Key"], []).append((entry, False))
        for entry in page.get("DeleteMarkers", []):
            by_key.setdefault(entry["Key"], []).append((entry, True))
    for key, entries in by_key.items():
        # Newest first within each list; merged by time, the latest one last (timestamps are to the second).
        indexed = [(entry["LastModified"], bool(entry.get("IsLatest")), -position, entry, marker)
                   for position, (entry, marker) in enumerate(entries)]
        for _, _, _, entry, marker in sorted(indexed, key=lambda row: row[:3]):
            yield _object_version(s3, bucket, key, entry, marker)


def _object_version(s3: Any, bucket: str, key: str, entry: Mapping[str, Any], marker: bool) -> ObjectVersion:
    version_id = str(entry.get("VersionId") or "null")
    fields: dict[str, Any] = {"key": key, "version_id": version_id,
                              "last_modified": entry["LastModified"].isoformat(), "delete_marker": marker}
    if marker:
        return ObjectVersion(fields)
    head = s3.head_object(Bucket=bucket, Key=key, VersionId=version_id)
    for name, (response_key, _) in _OBJECT_FIELDS.items():
        if head.get(response_key) is not None:
            fields[name] = head[response_key]
    fields["metadata"] = dict(head.get("Metadata") or {})
    tags = s3.get_object_tagging(Bucket=bucket, Key=key, VersionId=version_id).get("TagSet", [])
    fields["tags"] = {tag["Key"]: tag["Value"] for tag in tags}
    return ObjectVersion(fields, lambda: s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"])


def drain_queue(sqs: Any, url: str, *, grace_seconds: float = 5.0,
                warnings: Optional[list[str]] = None) -> Iterator[dict[str, Any]]:
    """Every message of the queue, received once each (kept invisible until moto stops).

    Messages another consumer holds (received, not yet deleted or released) come back when their
    visibility ends: they are waited for up to ``grace_seconds`` (the pump releases a failed record
    after 2 s); one still held then is not saved, and a warning says so."""
    mine = 0
    deadline = time.monotonic() + grace_seconds
    while True:
        response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                       VisibilityTimeout=43200, AttributeNames=["All"],
                                       MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"])
        messages = response.get("Messages", [])
        for message in messages:
            mine += 1
            attributes = message.get("Attributes", {})
            yield {"body": message["Body"], "attributes": message.get("MessageAttributes", {}),
                   "system": {name: attributes[name] for name in ("AWSTraceHeader", "MessageGroupId",
                                                                  "MessageDeduplicationId") if name in attributes},
                   "sent_at": attributes.get("SentTimestamp"),
                   "receive_count": int(attributes.get("ApproximateReceiveCount", "1")) - 1}
        if messages:
            continue
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        held = max(0, int(counts.get("ApproximateNumberOfMessagesNotVisible", 0)) - mine)
        waiting = int(counts.get("ApproximateNumberOfMessages", 0)) + int(counts.get("ApproximateNumberOfMessagesDelayed", 0))
        if not held and not waiting:
            return
        if time.monotonic() > deadline:
            if warnings is not None:
                name = url.rstrip("/").rsplit("/", 1)[-1]
                warnings.append(f"{held + waiting} message(s) of {name} were in flight and are not in the snapshot "
                                "(the reconciler dispatches their work again)")
            return
        time.sleep(0.2)


def save(state_dir: Path, clients: Mapping[str, Any], resources: Resources, *, admin_key: Optional[str] = None,
         info: Optional[Mapping[str, Any]] = None, grace_seconds: float = 5.0) -> Summary:
    """Snapshot the resources' content into a new current snapshot under ``state_dir`` (atomically:
    on any error the previous snapshot stays current and untouched). Call it with nothing else
    writing: the stack stops its API, pump, sweeper and agents first."""
    began = time.monotonic()
    summary = Summary()
    with SnapshotWriter(state_dir) as writer:
        for table in resources.tables:
            summary.items += writer.table(table, scan_items(clients["dynamodb"], table))
        for bucket in resources.buckets:
            summary.versions += writer.bucket(bucket, object_versions(clients["s3"], bucket))
        for name, url in resources.queues.items():
            summary.messages += writer.queue(name, drain_queue(clients["sqs"], url, grace_seconds=grace_seconds,
                                                               warnings=summary.warnings))
        if admin_key:
            writer.admin_key(admin_key)
        summary.path = writer.commit(info)
    summary.seconds = time.monotonic() - began
    return summary


# --------------------------------------------------------------------------- restoring

VersionPinner = Callable[[str, str, str, str, str], None]


def restore(snapshot: Snapshot, clients: Mapping[str, Any], resources: Resources, *,
            pin_version: Optional[VersionPinner] = None) -> Summary:
    """Put the snapshot's content into the (empty) resources. ``pin_version(bucket, key, new_id,
    saved_id, last_modified)`` gives a restored object version its saved id back (S3 has no call for
    that: ``moto_version_pinner``); without it, versions get new ids. Raises ``SnapshotError``
    when the snapshot names a resource the stack does not have."""
    began = time.monotonic()
    missing = ([f"table {t}" for t in snapshot.tables if t not in resources.tables]
               + [f"bucket {b}" for b in snapshot.buckets if b not in resources.buckets]
               + [f"queue {q}" for q in snapshot.queues if q not in resources.queues])
    if missing:
        raise SnapshotError(f"the snapshot {snapshot.path} holds {', '.join(missing)}, which this stack does not "
                            "create (renamed or removed from infra/resources.yaml?)")
    _require_empty(clients, resources)
    summary = Summary(path=snapshot.path)
    for table in snapshot.tables:
        summary.items += _put_items(clients["dynamodb"], table, snapshot.items(table))
    for bucket in snapshot.buckets:
        written: dict[str, int] = {}
        for version in snapshot.versions(bucket):
            # LastModified is saved to the second; a microsecond per earlier version of the key keeps
            # versions of the same second in order (S3 lists them by time).
            order = written[version["key"]] = written.get(version["key"], -1) + 1
            _put_version(clients["s3"], bucket, version, snapshot, pin_version, order)
            summary.versions += 1
    for queue in snapshot.queues:
        summary.messages += _send_messages(clients["sqs"], resources.queues[queue], snapshot.messages(queue))
    summary.seconds = time.monotonic() - began
    return summary


def _require_empty(clients: Mapping[str, Any], resources: Resources) -> None:
    """A restore goes into new, empty resources only: anything there would be mixed with the snapshot."""
    held = [f"table {t}" for t in resources.tables
            if clients["dynamodb"].scan(TableName=t, Limit=1, Select="COUNT").get("Count")]
    for bucket in resources.buckets:
        listed = clients["s3"].list_object_versions(Bucket=bucket, MaxKeys=1)
        if listed.get("Versions") or listed.get("DeleteMarkers"):
            held.append(f"bucket {bucket}")
    for name, url in resources.queues.items():
        counts = clients["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        if any(int(value) for value in counts.values()):
            held.append(f"queue {name}")
    if held:
        raise SnapshotError(f"{', '.join(held)} already hold data: a snapshot is restored into an empty moto only")


def _chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _put_items(dynamodb: Any, table: str, items: Iterable[dict[str, Any]]) -> int:
    count = 0
    for chunk in _chunks(items, 25):
        requests = {table: [{"PutRequest": {"Item": item}} for item in chunk]}
        for attempt in range(20):
            unprocessed = dynamodb.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
            if not unprocessed:
                break
            requests = unprocessed
            time.sleep(min(1.0, 0.05 * 2 ** attempt))
        else:
            raise SnapshotError(f"table {table}: items still unprocessed after 20 attempts")
        count += len(chunk)
    return count


def _put_version(s3: Any, bucket: str, version: Mapping[str, Any], snapshot: Snapshot,
                 pin_version: Optional[VersionPinner], order: int = 0) -> None:
    key = version["key"]
    if version.get("delete_marker"):
        new_id = s3.delete_object(Bucket=bucket, Key=key).get("VersionId")
    else:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "Metadata": dict(version.get("metadata") or {})}
        for name, (_, parameter) in _OBJECT_FIELDS.items():
            if version.get(name) is not None:
                params[parameter] = version[name]
        with open(snapshot.blob(version["blob"]), "rb") as body:
            new_id = s3.put_object(Body=body, **params).get("VersionId")
    saved_id = version["version_id"]
    if pin_version is not None and new_id and saved_id != "null" and new_id != saved_id:
        last_modified = version.get("last_modified") or ""
        if last_modified:
            last_modified = (dt.datetime.fromisoformat(last_modified) + dt.timedelta(microseconds=order)).isoformat()
        pin_version(bucket, key, new_id, saved_id, last_modified)
        new_id = saved_id
    if version.get("tags"):   # after the pin: moto keeps tags by the version's ARN, which names its id
        s3.put_object_tagging(Bucket=bucket, Key=key, VersionId=new_id or "null", Tagging={
            "TagSet": [{"Key": k, "Value": v} for k, v in version["tags"].items()]})


def _send_messages(sqs: Any, url: str, messages: Iterable[dict[str, Any]]) -> int:
    count = 0
    fifo = url.endswith(".fifo")
    for chunk in _chunks(messages, 10):
        entries = []
        for index, message in enumerate(chunk):
            entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["body"]}
            if message.get("attributes"):
                entry["MessageAttributes"] = message["attributes"]
            system = message.get("system") or {}
            if system.get("AWSTraceHeader"):
                entry["MessageSystemAttributes"] = {"AWSTraceHeader": {"DataType": "String",
                                                                       "StringValue": system["AWSTraceHeader"]}}
            if fifo:
                for name in ("MessageGroupId", "MessageDeduplicationId"):
                    if system.get(name):
                        entry[name] = system[name]
            entries.append(entry)
        if sum(len(e["MessageBody"].encode()) for e in entries) > 200 * 1024:
            results = [sqs.send_message(QueueUrl=url, **{k: v for k, v in e.items() if k != "Id"}) for e in entries]
            count += len(results)
            continue
        response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if response.get("Failed"):
            failed = response["Failed"][0]
            raise SnapshotError(f"queue {url.rsplit('/', 1)[-1]}: a message could not be sent back "
                                f"({failed.get('Code')}: {failed.get('Message')})")
        count += len(entries)
    return count


def moto_version_pinner(account_id: str = "123456789012", partition: str = "aws") -> VersionPinner:
    """A ``pin_version`` for a moto server running in this process (``ThreadedMotoServer``, as the
    local stack runs it): finds the version just written and gives it its saved id and LastModified.
    The one place the snapshot reaches past boto3, because S3 cannot set a version id."""
    from moto.s3.models import s3_backends

    def pin(bucket: str, key: str, new_id: str, saved_id: str, last_modified: str) -> None:
        try:
            versions = s3_backends[account_id][partition].buckets[bucket].keys.getlist(key, [])
        except (KeyError, AttributeError) as error:
            raise SnapshotError(f"cannot set the version id of {bucket}/{key} in this moto ({error!r})") from None
        for version in versions:
            if getattr(version, "version_id", None) == new_id:
                version._version_id = saved_id
                if last_modified:
                    moment = dt.datetime.fromisoformat(last_modified)
                    if moment.tzinfo is not None:
                        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
                    version.last_modified = moment
                return
        raise SnapshotError(f"the restored version {new_id} of {bucket}/{key} is not in this moto")

    return pin


__all__ = ["FORMAT", "FRESH_HINT", "ObjectVersion", "Resources", "Snapshot", "SnapshotError", "SnapshotWriter",
           "StateInUse", "StateLock",
           "Summary", "current_name", "decode_item", "discover", "encode_item", "load", "moto_version_pinner",
           "restore", "save"]
