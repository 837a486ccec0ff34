"""Resumable agents: the role's session folders, kept in the task's state between jobs.

A role may declare ``session_paths`` (folders, or files, under the agent's HOME where it keeps its
session: goose's ``.local/share/goose/sessions``, Claude Code's ``.claude``) and a
``resume_command``. For such a role the runner

1. restores the task's saved session for the role (state ``sessions/{role}``: a tar.gz of those
   paths, relative to HOME) into the job's fresh HOME before the command;
2. runs ``resume_command`` instead of ``command`` when a saved session was restored (and the role
   has one); ``{session_id}`` / ``BATON_SESSION_ID`` is stable per task and role
   (:func:`session_id`, shaped as a UUID because Claude Code's ``--session-id`` wants one);
3. saves the paths again after the command (whatever its exit, a timeout included) and, while it
   runs, from the heartbeat loop at most every :data:`SAVE_INTERVAL_SECONDS` and only when the
   folders changed (a digest of names, sizes and times).

The archive always goes through the state's presigned upload (``application/octet-stream``, up to
:data:`MAX_ARCHIVE_BYTES`), whatever its size: one code path. A task's state outlives its jobs, so
a job re-dispatched after a crash and the role's next iteration after a loop-back start from the
last save.

Nothing here may hurt the job. A save or a restore that fails is a warning (a line in the runner's
log and in the stage's notes), never a failed stage. Saving reads the agent's folders without
following a symbolic link at any level (directory file descriptors, ``O_NOFOLLOW``), keeps only
folders and regular files, and stops at the caps. Restoring refuses the whole archive when any
member is absolute, has a ``..`` or an empty part, lies outside the role's declared paths, is
anything but a folder or a regular file (links, devices, fifos, sparse files), or when the archive
is larger, unpacks to more, or holds more members than the caps; it extracts into a staging folder
(with tarfile's ``data`` filter where Python has it) and moves the paths into HOME only when every
member passed.

Claude Code finds a session by the directory it was started in, and goose records one; so a role
with session paths works in a directory whose path is the same for every job of the task and role
(:func:`stable_workdir`), held by a lock while a job uses it; when that cannot be had (another
job of the task and role is still running on this machine, or the path is someone else's) the job
works in a fresh temporary directory, as any other.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import re
import stat
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional
from urllib.parse import quote

from . import transfer
from .client import ApiError

STATE_PREFIX = "sessions/"
CONTENT_TYPE = "application/octet-stream"
MAX_ARCHIVE_BYTES = 100 * 1024 * 1024      # the state's upload limit
MAX_UNPACKED_BYTES = 256 * 1024 * 1024     # the files' sizes, summed
MAX_MEMBERS = 20_000
MAX_DEPTH = 48
TAR_OVERHEAD_BYTES = 16 * 1024 * 1024      # headers and padding on top of the files, when unpacking
SAVE_INTERVAL_SECONDS = 300.0              # the least time between two saves while the command runs
MAX_NAME_CHARS = 1024

PATH_PART = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP,    # vanished, or replaced by a link, since it was listed;
        errno.EACCES, errno.EPERM)                  # or the agent made it unreadable: left out


class SessionError(Exception):
    """The session cannot be saved or restored (too large, unsafe, broken): the job goes on without."""


# ---------------------------------------------------------------- names

def session_id(task_id: str, role: str) -> str:
    """Stable per task and role, and shaped as a (version 4) UUID, which Claude Code's
    ``--session-id`` requires and goose's ``--name`` accepts."""
    digest = hashlib.sha256(f"baton-session\0{task_id}\0{role}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def state_name(role: str) -> str:
    return f"{STATE_PREFIX}{role}"


def state_path(task_id: str, role: str) -> str:
    """The state's URL path; its '/' is sent as %2F."""
    return f"/tasks/{quote(task_id, safe='')}/state/{quote(state_name(role), safe='')}"


def declared_paths(paths: Any) -> list[str]:
    """The role's session paths that are safe relative paths under HOME, without duplicates or a
    path inside another one (it is archived with it)."""
    if not isinstance(paths, list):
        return []
    safe = sorted({p for p in paths if isinstance(p, str) and 0 < len(p) <= 200
                   and all(PATH_PART.match(part) and part not in (".", "..") for part in p.split("/"))})
    return [p for p in safe if not any(p != q and p.startswith(q + "/") for q in safe)]


def _allowed(name: str, paths: list[str]) -> bool:
    return any(name == p or name.startswith(p + "/") for p in paths)


# ---------------------------------------------------------------- reading the agent's folders

@dataclass
class Entry:
    name: str                 # relative to HOME
    is_dir: bool
    stat: os.stat_result
    dir_fd: int               # the open folder that holds it (valid while the walk is at this entry)
    base: str                 # its name in that folder


def walk(home: Path, paths: list[str]) -> Iterator[Entry]:
    """Every folder and regular file of the session paths, in a stable order, never following a
    symbolic link (not in the paths themselves, not inside); links, devices, sockets and fifos are
    left out, and so are what cannot be read and names that are not UTF-8. Raises
    :class:`SessionError` past MAX_DEPTH."""
    try:
        root = os.open(home, DIR_FLAGS)
    except OSError:
        return
    try:
        for rel in declared_paths(paths):
            parts = rel.split("/")
            opened: list[int] = []
            try:
                parent = root
                for part in parts[:-1]:
                    parent = os.open(part, DIR_FLAGS, dir_fd=parent)
                    opened.append(parent)
            except OSError as error:
                for fd in opened:
                    os.close(fd)
                if error.errno in GONE:
                    continue
                raise
            try:
                yield from _walk_entry(parent, parts[-1], rel, 0)
            finally:
                for fd in reversed(opened):
                    os.close(fd)
    finally:
        os.close(root)


def _walk_entry(dir_fd: int, base: str, name: str, depth: int) -> Iterator[Entry]:
    try:
        base.encode("utf-8")
    except UnicodeEncodeError:
        return
    try:
        found = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as error:
        if error.errno in GONE:
            return
        raise
    if stat.S_ISREG(found.st_mode):
        yield Entry(name, False, found, dir_fd, base)
        return
    if not stat.S_ISDIR(found.st_mode):
        return
    if depth >= MAX_DEPTH:
        raise SessionError(f"{name} is more than {MAX_DEPTH} folders deep")
    try:
        fd = os.open(base, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in GONE:
            return
        raise
    try:
        yield Entry(name, True, os.fstat(fd), dir_fd, base)
        for child in sorted(os.listdir(fd)):
            yield from _walk_entry(fd, child, f"{name}/{child}", depth + 1)
    finally:
        os.close(fd)


@dataclass
class Fingerprint:
    digest: str
    members: int
    size: int

    def too_large(self) -> Optional[str]:
        if self.members > MAX_MEMBERS:
            return f"more than {MAX_MEMBERS} files and folders"
        if self.size > MAX_UNPACKED_BYTES:
            return f"{self.size} bytes of files, more than {MAX_UNPACKED_BYTES // (1024 * 1024)} MB"
        return None


def fingerprint(home: Path, paths: list[str]) -> Fingerprint:
    """What the session folders hold, cheaply: a digest of every entry's name, kind, size, times and
    inode (not the bytes). It changes when a file is written, added, removed or renamed."""
    digest, members, size = hashlib.sha256(), 0, 0
    for entry in walk(home, paths):
        members += 1
        if members > MAX_MEMBERS:
            break
        s = entry.stat
        if not entry.is_dir:
            size += s.st_size
        digest.update(f"{entry.name}\0{entry.is_dir}\0{s.st_size}\0{s.st_mtime_ns}\0{s.st_ctime_ns}\0"
                      f"{s.st_ino}\0{s.st_mode}\n".encode())
    return Fingerprint(digest.hexdigest(), members, size)


class _CappedWriter(io.RawIOBase):
    """Collects the compressed archive; refuses to grow past ``limit``."""

    def __init__(self, limit: int):
        super().__init__()
        self.buffer = io.BytesIO()
        self.limit = limit

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.buffer.tell() + len(data) > self.limit:
            raise SessionError(f"the archive is larger than {self.limit // (1024 * 1024)} MB")
        return self.buffer.write(data)


class _ExactReader:
    """``size`` bytes of an open file: zeros if it shrank while read, nothing past ``size`` if it
    grew (the next save takes the change)."""

    def __init__(self, fd: int, size: int):
        self.fd = fd
        self.left = size

    def read(self, n: int = -1) -> bytes:
        want = self.left if n is None or n < 0 else min(n, self.left)
        chunks, got = [], 0
        while got < want:
            chunk = os.read(self.fd, min(want - got, 1024 * 1024))
            if not chunk:
                chunks.append(b"\0" * (want - got))
                got = want
                break
            chunks.append(chunk)
            got += len(chunk)
        self.left -= got
        return b"".join(chunks)


def pack(home: Path, paths: list[str]) -> tuple[bytes, int, int]:
    """A tar.gz of the session paths (names relative to HOME): (bytes, members, bytes of files).
    Raises :class:`SessionError` past the caps."""
    out = _CappedWriter(MAX_ARCHIVE_BYTES)
    members, size = 0, 0
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as compressed:
        with tarfile.open(fileobj=compressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry in walk(home, paths):
                members += 1
                if members > MAX_MEMBERS:
                    raise SessionError(f"more than {MAX_MEMBERS} files and folders")
                info = tarfile.TarInfo(entry.name)
                info.mtime = int(entry.stat.st_mtime)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if entry.is_dir:
                    info.type, info.mode = tarfile.DIRTYPE, 0o700
                    tar.addfile(info)
                    continue
                try:
                    fd = os.open(entry.base, FILE_FLAGS, dir_fd=entry.dir_fd)
                except OSError as error:
                    if error.errno in GONE:
                        members -= 1
                        continue
                    raise
                try:
                    opened = os.fstat(fd)
                    if not stat.S_ISREG(opened.st_mode):   # swapped for something else since it was listed
                        members -= 1
                        continue
                    size += opened.st_size
                    if size > MAX_UNPACKED_BYTES:
                        raise SessionError(f"more than {MAX_UNPACKED_BYTES // (1024 * 1024)} MB of files")
                    info.size, info.mode = opened.st_size, (opened.st_mode & 0o755) | 0o600
                    tar.addfile(info, _ExactReader(fd, opened.st_size))
                finally:
                    os.close(fd)
    return out.buffer.getvalue(), members, size


# ---------------------------------------------------------------- unpacking a saved archive

class _CappedReader:
    """The decompressed tar stream, refused once it is longer than ``limit`` (a gzip bomb)."""

    def __init__(self, raw: Any, limit: int):
        self.raw = raw
        self.limit = limit
        self.read_so_far = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.limit + 1 - self.read_so_far
        data = self.raw.read(min(n, self.limit + 1 - self.read_so_far))
        self.read_so_far += len(data)
        if self.read_so_far > self.limit:
            raise SessionError(f"the archive unpacks to more than {self.limit // (1024 * 1024)} MB")
        return data


def member_problem(member: tarfile.TarInfo, paths: list[str]) -> Optional[str]:
    """Why a member may not be restored, or None."""
    name = member.name
    shown = repr(name[:120])
    if not name or len(name) > MAX_NAME_CHARS:
        return f"a member's name is empty or longer than {MAX_NAME_CHARS} characters"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return f"{shown} is an absolute path"
    if any(part in ("", ".", "..") for part in name.split("/")) or "\\" in name or "\0" in name:
        return f"{shown} has a '..', '.', '\\' or an empty part"
    if member.issym() or member.islnk():
        return f"{shown} is a link"
    if member.ischr() or member.isblk() or member.isfifo():
        return f"{shown} is a device or a fifo"
    if not (member.isdir() or member.type in (tarfile.REGTYPE, tarfile.AREGTYPE)) or member.issparse():
        return f"{shown} is not a folder or a regular file"
    if not _allowed(name, paths):
        return f"{shown} is outside the role's session paths"
    if member.size < 0:
        return f"{shown} has a negative size"
    return None


def unpack(data: bytes, paths: list[str], target: Path) -> int:
    """Extract a saved archive into the empty folder ``target``, all or nothing: raises
    :class:`SessionError` (and leaves the caller to remove ``target``) on the first member that
    may not be restored, past the caps, or when the archive is broken. Returns the members."""
    paths = declared_paths(paths)
    members, size = 0, 0
    safe_filter = getattr(tarfile, "data_filter", None)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as compressed:
            stream = _CappedReader(compressed, MAX_UNPACKED_BYTES + TAR_OVERHEAD_BYTES)
            with tarfile.open(fileobj=stream, mode="r|", errorlevel=2) as tar:   # type: ignore[call-overload]
                for member in tar:
                    members += 1
                    if members > MAX_MEMBERS:
                        raise SessionError(f"the archive holds more than {MAX_MEMBERS} members")
                    problem = member_problem(member, paths)
                    if problem:
                        raise SessionError(f"unsafe archive: {problem}")
                    size += member.size if member.isfile() else 0
                    if size > MAX_UNPACKED_BYTES:
                        raise SessionError(f"the archive unpacks to more than {MAX_UNPACKED_BYTES // (1024 * 1024)} MB")
                    if safe_filter is not None:
                        tar.extract(member, target, filter=safe_filter)   # type: ignore[call-arg]
                    else:   # an old Python: the checks above, and no owner, mode or time from the archive
                        tar.extract(member, target, set_attrs=False)
    except SessionError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError, UnicodeError) as error:
        raise SessionError(f"the archive is broken: {type(error).__name__}: {str(error)[:200]}") from None
    return members


def install(staging: Path, home: Path, paths: list[str]) -> None:
    """Move each restored path from ``staging`` to the same place under HOME (replacing what is there)."""
    from .work import remove_tree

    for rel in declared_paths(paths):
        source = staging / rel
        if not os.path.lexists(source):
            continue
        target = home / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            remove_tree(target)
        os.replace(source, target)


# ---------------------------------------------------------------- storage

def download_bounded(url: str, limit: int) -> bytes:
    """A presigned GET, refused past ``limit`` bytes (whatever the storage announces)."""
    transfer.require_http(url)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"),  # nosec B310  # scheme checked by require_http
                                    timeout=transfer.TIMEOUT_SECONDS) as response:
            data = response.read(limit + 1)
    except urllib.error.HTTPError as error:
        raise transfer.storage_error(error, "the download from storage was refused") from None
    except (urllib.error.URLError, OSError) as error:
        raise ApiError(0, "unreachable", f"cannot reach the storage: {getattr(error, 'reason', error)}") from None
    if len(data) > limit:
        raise SessionError(f"the saved session is larger than {limit // (1024 * 1024)} MB")
    return data


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} B"


class SessionKeeper:
    """The session of one job: restore before the command, save while it runs and after."""

    def __init__(self, client: Any, task_id: str, role: str, paths: list[str], home: Path,
                 log: Callable[[str], None], interval: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.task_id = task_id
        self.role = role
        self.paths = declared_paths(paths)
        self.home = home
        self.log = log
        self.interval = SAVE_INTERVAL_SECONDS if interval is None else interval
        self.clock = clock
        self.path = state_path(task_id, role)
        self.notes: list[str] = []
        self.restored_version: Optional[int] = None
        self.saved: Optional[str] = None        # the digest of what the state holds (or was restored)
        self.refused: Optional[str] = None      # the digest of a session too large to save (said once)
        self.last_try = clock()
        self.saves = 0
        self.closed = False
        self._saving = threading.Lock()

    # ---- restore

    def restore(self) -> bool:
        """Put the task's saved session under HOME. True when one was restored; every failure is a
        warning and False (the job starts a new session)."""
        try:
            return self._restore()
        except Exception as error:   # never the job's failure
            self._warn(f"session not restored: {type(error).__name__}: {str(error)[:300]}")
            return False
        finally:
            self.last_try = self.clock()

    def _restore(self) -> bool:
        try:
            saved = self.client.get(self.path)
        except ApiError as error:
            if error.status == 404:
                self.log(f"session: none saved yet for {self.role} on task {self.task_id}; a new one starts")
                self._baseline()
                return False
            raise
        if not isinstance(saved, dict) or saved.get("value") is not None or not saved.get("download_url"):
            raise SessionError(f"state {state_name(self.role)} is not a session archive")
        if saved.get("content_type") != CONTENT_TYPE:
            raise SessionError(f"state {state_name(self.role)} is {saved.get('content_type')}, not {CONTENT_TYPE}")
        size = saved.get("size")
        if not isinstance(size, int) or not 0 < size <= MAX_ARCHIVE_BYTES:
            raise SessionError(f"the saved session's size ({size}) is not between 1 byte and "
                               f"{MAX_ARCHIVE_BYTES // (1024 * 1024)} MB")
        data = download_bounded(saved["download_url"], MAX_ARCHIVE_BYTES)
        if len(data) != size or hashlib.sha256(data).hexdigest() != saved.get("sha256"):
            raise SessionError("the downloaded session is not the size and sha256 the state records")
        staging = Path(tempfile.mkdtemp(prefix=".session-", dir=self.home.parent))
        try:
            members = unpack(data, self.paths, staging)
            install(staging, self.home, self.paths)
        finally:
            from .work import remove_tree

            remove_tree(staging)
        self._baseline()
        self.restored_version = saved.get("version")
        if not members:
            self.log("session: the saved archive is empty; a new one starts")
            return False
        self._note(f"session restored: {state_name(self.role)} v{self.restored_version} "
                   f"({members} entries, {_size(size)})")
        return True

    def _baseline(self) -> None:
        """What HOME holds now is what the state holds: an unchanged session is not saved again."""
        self.saved = fingerprint(self.home, self.paths).digest

    # ---- save

    def tick(self) -> None:
        """From the heartbeat loop: start a save in the background when one is due (never more often
        than ``interval``, never two at once); the heartbeat itself never waits on it."""
        if self.closed or self.clock() - self.last_try < self.interval:
            return
        if not self._saving.acquire(blocking=False):
            return
        self.last_try = self.clock()

        def background() -> None:
            try:
                self._save("while the command runs")
            finally:
                self._saving.release()

        threading.Thread(target=background, name="baton-session-save", daemon=True).start()

    def close(self) -> bool:
        """The save after the command (waits for one already under way). No further saves."""
        self.closed = True
        with self._saving:
            return self._save("after the command")

    def _save(self, when: str) -> bool:
        try:
            return self._upload(when)
        except Exception as error:   # never the job's failure
            self._warn(f"session not saved {when}: {type(error).__name__}: {str(error)[:300]}")
            return False
        finally:
            self.last_try = self.clock()

    def _upload(self, when: str) -> bool:
        found = fingerprint(self.home, self.paths)
        if found.digest == self.saved:
            return False                       # unchanged since the last save (or the restore)
        if not found.members:
            return False                       # nothing there: what the state holds stays
        too_large = found.too_large()
        if too_large:
            if found.digest != self.refused:
                self.refused = found.digest
                self._warn(f"session not saved {when}: {too_large}")
            return False
        data, members, size = pack(self.home, self.paths)
        digest = hashlib.sha256(data).hexdigest()
        form = self.client.post(f"{self.path}/upload", {"size": len(data), "sha256": digest,
                                                         "content_type": CONTENT_TYPE})
        upload = form["upload"]
        transfer.upload_presigned_post(upload["url"], upload.get("fields") or {}, "session.tar.gz", CONTENT_TYPE,
                                       data)
        stored = self.client.post(f"{self.path}/confirm", {})
        self.saved = found.digest
        self.saves += 1
        version = stored.get("version") if isinstance(stored, dict) else None
        self._note(f"session saved {when}: {state_name(self.role)} v{version} ({members} entries, "
                   f"{_size(size)} in {_size(len(data))})")
        return True

    def _note(self, line: str) -> None:
        self.log(line)
        self.notes.append(line)

    def _warn(self, line: str) -> None:
        self.log(f"warning: {line}")
        self.notes.append(line)


def keeper_for(client: Any, task_id: str, role: str, config: dict[str, Any], home: Path,
               log: Callable[[str], None]) -> Optional[SessionKeeper]:
    """A keeper when the role declares session paths, else None."""
    paths = declared_paths(config.get("session_paths"))
    if not paths:
        return None
    return SessionKeeper(client, task_id, role, paths, home, log)


def command_template(config: dict[str, Any], job: dict[str, Any], restored: bool) -> str:
    """``resume_command`` when a saved session was restored and the role has one, else the command."""
    if restored and config.get("resume_command"):
        return str(config["resume_command"])
    return str(config.get("command") or job.get("command") or "true")


# ---------------------------------------------------------------- the job's directory

class JobDirectory:
    """A work directory at a path stable per task and role, and the lock that keeps it this job's."""

    def __init__(self, path: Path, lock_fd: int, lock_path: Path):
        self.path = path
        self.lock_fd = lock_fd
        self.lock_path = lock_path

    def release(self) -> None:
        """Unlock (the lock file goes first, while still held, so that no one locks a dead one)."""
        try:
            if os.path.samestat(os.fstat(self.lock_fd), os.stat(self.lock_path, follow_symlinks=False)):
                os.unlink(self.lock_path)
        except OSError:
            pass
        try:
            os.close(self.lock_fd)
        except OSError:
            pass


def stable_workdir(base: Path, task_id: str, role: str) -> Optional[JobDirectory]:
    """``base/baton-session-{task_id}-{role}``, fresh and this job's, or None when it cannot be had
    (another job of the task and role holds it, or it is not this user's). A folder left there by a
    job that died is removed first."""
    if not (SAFE_ID.match(task_id) and SAFE_ID.match(role)):
        return None
    try:
        import fcntl
    except ImportError:   # not POSIX
        return None
    name = f"baton-session-{task_id}-{role}"
    lock_path = base / f".{name}.lock"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    for _ in range(3):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:   # a job of this task and role still works there
            os.close(fd)
            return None
        try:
            current = os.path.samestat(os.fstat(fd), os.stat(lock_path, follow_symlinks=False))
        except OSError:
            current = False
        if current:
            break
        os.close(fd)   # a job releasing it unlinked the file we locked: lock the new one
    else:
        return None
    directory = JobDirectory(base / name, fd, lock_path)
    path = directory.path
    try:
        if os.path.lexists(path):
            found = os.lstat(path)
            if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
                directory.release()
                return None
            from .work import remove_tree

            remove_tree(path)
        os.mkdir(path, 0o700)
    except OSError:
        directory.release()
        return None
    return directory


__all__ = ["CONTENT_TYPE", "JobDirectory", "MAX_ARCHIVE_BYTES", "MAX_MEMBERS", "MAX_UNPACKED_BYTES",
           "SAVE_INTERVAL_SECONDS", "SessionError", "SessionKeeper", "command_template", "declared_paths",
           "fingerprint", "keeper_for", "member_problem", "pack", "session_id", "stable_workdir", "state_name",
           "state_path", "unpack"]
