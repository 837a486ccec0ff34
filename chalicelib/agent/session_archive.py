"""A session's archive: the role's session folders under the agent's HOME, packed and unpacked safely
(:mod:`.sessions` keeps them in the task's state between jobs).

Packing reads the agent's folders without following a symbolic link at any level (directory file
descriptors, ``O_NOFOLLOW``), keeps only folders and regular files, and stops at the caps.
Unpacking refuses the whole archive when any member is absolute, has a ``..`` or an empty part, lies
outside the role's declared paths, is anything but a folder or a regular file (links, devices,
fifos, sparse files), or when the archive is larger, unpacks to more, or holds more members than the
caps; it extracts into a staging folder (with tarfile's ``data`` filter where Python has it), and
:func:`install` moves the paths into HOME only when every member passed.
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
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

MAX_ARCHIVE_BYTES = 100 * 1024 * 1024      # the state's upload limit
MAX_UNPACKED_BYTES = 256 * 1024 * 1024     # the files' sizes, summed
MAX_MEMBERS = 20_000
MAX_DEPTH = 48
TAR_OVERHEAD_BYTES = 16 * 1024 * 1024      # headers and padding on top of the files, when unpacking
MAX_NAME_CHARS = 1024

PATH_PART = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP,    # vanished, or replaced by a link, since it was listed;
        errno.EACCES, errno.EPERM)                  # or the agent made it unreadable: left out


class SessionError(Exception):
    """The session cannot be saved or restored (too large, unsafe, broken): the job goes on without."""


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


__all__ = ["MAX_ARCHIVE_BYTES", "MAX_MEMBERS", "MAX_UNPACKED_BYTES", "SessionError", "declared_paths", "fingerprint",
           "install", "member_problem", "pack", "unpack", "walk"]
