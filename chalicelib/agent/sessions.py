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
log and in the stage's notes), never a failed stage. How the folders are packed and unpacked safely
(no link followed, nothing outside the declared paths, caps on every size) is
:mod:`.session_archive`.

Claude Code finds a session by the directory it was started in, and goose records one; so a role
with session paths works in a directory whose path is the same for every job of the task and role
(:func:`stable_workdir`), held by a lock while a job uses it; when that cannot be had (another
job of the task and role is still running on this machine, or the path is someone else's) the job
works in a fresh temporary directory, as any other.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import quote

from . import transfer
from .client import ApiError
from .session_archive import MAX_ARCHIVE_BYTES, SessionError, declared_paths, fingerprint, install, pack, unpack

STATE_PREFIX = "sessions/"
CONTENT_TYPE = "application/octet-stream"
SAVE_INTERVAL_SECONDS = 300.0              # the least time between two saves while the command runs
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
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


__all__ = ["CONTENT_TYPE", "JobDirectory", "SAVE_INTERVAL_SECONDS", "SessionKeeper", "command_template", "keeper_for",
           "session_id", "stable_workdir", "state_name", "state_path"]
