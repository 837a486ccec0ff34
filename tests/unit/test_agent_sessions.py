"""The session archive of resumable agents (chalicelib/agent/sessions.py), on its own: a round trip
of goose- and Claude-Code-like folders, what saving leaves out (links at any level, devices, fifos,
what is outside the declared paths), the digest that says whether anything changed, the caps, and
hostile archives refused whole on restore (absolute names, '..', links, devices, members outside
the paths, bombs, garbage), the stable session id, and the work directory stable per task and role.
"""

from __future__ import annotations

import gzip
import http.server
import io
import os
import tarfile
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from chalicelib.agent import session_archive, sessions
from chalicelib.agent.client import ApiError

GOOSE = ".local/share/goose/sessions"
CLAUDE = ".claude"
PATHS = [GOOSE, CLAUDE]


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def session_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / GOOSE / "nested").mkdir(parents=True)
    (home / GOOSE / "sessions.db").write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 40)
    (home / GOOSE / "nested" / "a.jsonl").write_text('{"role": "user"}\n')
    (home / CLAUDE / "projects" / "-work-repo").mkdir(parents=True)
    (home / CLAUDE / "projects" / "-work-repo" / "5f0c.jsonl").write_text('{"type": "summary"}\n')
    (home / CLAUDE / "empty").mkdir()
    (home / ".bashrc").write_text("not a session path\n")
    return home


def restored_into(tmp_path: Path, data: bytes, paths: list[str] = PATHS, name: str = "restored") -> Path:
    staging, home = tmp_path / f"{name}-staging", tmp_path / name
    staging.mkdir()
    home.mkdir()
    session_archive.unpack(data, paths, staging)
    session_archive.install(staging, home, paths)
    return home


# ---------------------------------------------------------------- the round trip

def test_a_session_round_trips_relative_to_home(tmp_path):
    home = session_home(tmp_path)
    data, members, size = session_archive.pack(home, PATHS)
    assert data[:2] == b"\x1f\x8b" and members == 9
    assert size == sum(len(v) for k, v in files_under(home).items() if k != ".bashrc")
    back = restored_into(tmp_path, data)
    assert files_under(back) == {k: v for k, v in files_under(home).items() if k != ".bashrc"}
    assert (back / CLAUDE / "empty").is_dir()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names)
    assert all(n == p or n.startswith(p + "/") for n in names for p in [next(p for p in PATHS if n.startswith(p))])


def test_packing_is_repeatable_and_a_missing_path_is_no_error(tmp_path):
    home = session_home(tmp_path)
    assert session_archive.pack(home, PATHS)[0] == session_archive.pack(home, PATHS)[0]
    only_claude = session_archive.pack(home, [CLAUDE, ".config/absent"])
    assert only_claude[1] == 5
    assert session_archive.pack(tmp_path / "no-home", PATHS)[1] == 0


def test_links_devices_and_fifos_are_left_out_and_no_link_is_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the runner's secret")
    home = session_home(tmp_path)
    (home / CLAUDE / "link-to-file").symlink_to(outside / "secret.txt")
    (home / CLAUDE / "link-to-dir").symlink_to(outside)
    (home / CLAUDE / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(home / CLAUDE / "pipe")
    # a declared path that is itself a link, and one whose parent is a link
    (home / ".goose-link").symlink_to(outside)
    (home / ".cfg").mkdir()
    (home / ".cfg" / "parent").symlink_to(outside)
    data, _, _ = session_archive.pack(home, PATHS + [".goose-link", ".cfg/parent/deeper", ".cfg/parent"])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        assert all(m.isdir() or m.isreg() for m in tar.getmembers())
    assert not [n for n in names if "link" in n or "pipe" in n or "dangling" in n or n.startswith(".cfg")]
    assert b"the runner's secret" not in gzip.decompress(data)


def test_declared_paths_keep_safe_relative_paths_once(tmp_path):
    assert session_archive.declared_paths([".claude", ".claude/projects", "/etc", "../x", "a/../b", "a//b", "", ".",
                                    "ok/./x", 3, ".local/share/goose/sessions", ".claude"]) == \
        [".claude", ".local/share/goose/sessions"]
    assert session_archive.declared_paths(None) == [] and session_archive.declared_paths(".claude") == []


# ---------------------------------------------------------------- what changed

def test_the_fingerprint_changes_only_when_the_session_does(tmp_path):
    home = session_home(tmp_path)
    first = session_archive.fingerprint(home, PATHS)
    assert first.members == 9 and first.digest == session_archive.fingerprint(home, PATHS).digest
    (home / ".bashrc").write_text("outside the paths: no change\n")
    assert session_archive.fingerprint(home, PATHS).digest == first.digest
    changes: list[Callable[[], Any]] = [
        lambda: (home / GOOSE / "nested" / "a.jsonl").write_text('{"role": "user"}\n{"role": "assistant"}\n'),
        lambda: (home / CLAUDE / "new.json").write_text("{}"),
        lambda: (home / CLAUDE / "new.json").rename(home / CLAUDE / "renamed.json"),
        lambda: (home / CLAUDE / "renamed.json").unlink(),
        lambda: (home / CLAUDE / "empty").rmdir(),
    ]
    seen = {first.digest}
    for change in changes:
        change()
        now = session_archive.fingerprint(home, PATHS).digest
        assert now not in seen
        seen.add(now)


def test_an_empty_session_has_no_members(tmp_path):
    assert session_archive.fingerprint(tmp_path, PATHS).members == 0


# ---------------------------------------------------------------- caps when saving

def test_saving_stops_at_the_caps(tmp_path, monkeypatch):
    home = session_home(tmp_path)
    monkeypatch.setattr(session_archive, "MAX_MEMBERS", 5)
    with pytest.raises(session_archive.SessionError, match="more than 5 files"):
        session_archive.pack(home, PATHS)
    assert session_archive.fingerprint(home, PATHS).too_large() == "more than 5 files and folders"
    monkeypatch.setattr(session_archive, "MAX_MEMBERS", 1000)
    monkeypatch.setattr(session_archive, "MAX_UNPACKED_BYTES", 1000)
    with pytest.raises(session_archive.SessionError, match="MB of files"):
        session_archive.pack(home, PATHS)
    assert "bytes of files" in session_archive.fingerprint(home, PATHS).too_large()
    monkeypatch.setattr(session_archive, "MAX_UNPACKED_BYTES", 10 ** 9)
    (home / CLAUDE / "noise.bin").write_bytes(os.urandom(200_000))
    monkeypatch.setattr(session_archive, "MAX_ARCHIVE_BYTES", 100_000)
    with pytest.raises(session_archive.SessionError, match="archive is larger"):
        session_archive.pack(home, PATHS)


def test_a_folder_nested_too_deep_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(session_archive, "MAX_DEPTH", 4)
    deep = tmp_path / CLAUDE / "a" / "b" / "c" / "d" / "e"
    deep.mkdir(parents=True)
    with pytest.raises(session_archive.SessionError, match="folders deep"):
        session_archive.pack(tmp_path, [CLAUDE])


# ---------------------------------------------------------------- hostile archives

def archive(*members: tuple[tarfile.TarInfo, Optional[bytes]], compress: bool = True) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in members:
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return gzip.compress(raw.getvalue()) if compress else raw.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, content: Optional[bytes] = b"x", **fields: Any):
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) and content is not None:
        info.size = len(content)
    for key, value in fields.items():
        setattr(info, key, value)
    return info, (content if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else None)


GOOD = member(".claude/ok.txt", content=b"fine")


@pytest.mark.parametrize("bad, why", [
    (member("/etc/cron.d/evil"), "absolute path"),
    (member("../../evil.sh"), "'..'"),
    (member(".claude/../../evil.sh"), "'..'"),
    (member(".claude/./x"), "'..', '.'"),
    (member(".claude//x"), "empty part"),
    (member(".claude\\..\\x"), "'\\'"),
    (member("C:/evil"), "absolute path"),
    (member(".bashrc"), "outside the role's session paths"),
    (member(".claudette/x"), "outside the role's session paths"),
    (member(".claude/link", tarfile.SYMTYPE, linkname="/etc/passwd"), "is a link"),
    (member(".claude/rel-link", tarfile.SYMTYPE, linkname="ok.txt"), "is a link"),
    (member(".claude/hard", tarfile.LNKTYPE, linkname=".claude/ok.txt"), "is a link"),
    (member(".claude/tty", tarfile.CHRTYPE, devmajor=5, devminor=0), "device"),
    (member(".claude/disk", tarfile.BLKTYPE, devmajor=8, devminor=0), "device"),
    (member(".claude/fifo", tarfile.FIFOTYPE), "fifo"),
    (member(".claude/contiguous", tarfile.CONTTYPE, content=b"c"), "not a folder or a regular file"),
])
def test_an_unsafe_member_refuses_the_whole_archive(tmp_path, bad, why):
    data = archive(GOOD, bad)
    target = tmp_path / "staging"
    target.mkdir()
    with pytest.raises(session_archive.SessionError, match="unsafe archive") as refused:
        session_archive.unpack(data, PATHS, target)
    assert why in str(refused.value)
    assert not (tmp_path / "evil.sh").exists() and not (tmp_path.parent / "evil.sh").exists()
    assert not any(p.is_symlink() for p in target.rglob("*"))


def test_a_gzip_bomb_is_refused_before_it_is_unpacked(tmp_path, monkeypatch):
    monkeypatch.setattr(session_archive, "MAX_UNPACKED_BYTES", 1024 * 1024)
    monkeypatch.setattr(session_archive, "TAR_OVERHEAD_BYTES", 64 * 1024)
    zeros = b"\0" * (8 * 1024 * 1024)
    data = archive(member(".claude/zeros", content=zeros))
    assert len(data) < 64 * 1024
    target = tmp_path / "staging"
    target.mkdir()
    with pytest.raises(session_archive.SessionError, match="unpacks to more than"):
        session_archive.unpack(data, PATHS, target)
    assert sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) <= 1024 * 1024
    # a member that says it is small but whose pax header is a bomb: stopped by the stream's cap
    info, content = member(".claude/small", content=b"s")
    info.pax_headers = {"comment": "c" * (2 * 1024 * 1024)}
    with pytest.raises(session_archive.SessionError, match="unpacks to more than"):
        session_archive.unpack(archive((info, content)), PATHS, tmp_path / "staging")


def test_too_many_members_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(session_archive, "MAX_MEMBERS", 10)
    data = archive(*(member(f".claude/f{i}") for i in range(11)))
    (tmp_path / "s").mkdir()
    with pytest.raises(session_archive.SessionError, match="more than 10 members"):
        session_archive.unpack(data, PATHS, tmp_path / "s")


@pytest.mark.parametrize("data", [
    b"",
    b"not gzip at all",
    gzip.compress(b"gzip, but not a tar" * 100),
    archive(GOOD, member(".claude/more", content=b"y" * 5000))[:-200],   # cut short
    gzip.compress(b"\xff" * 512 + archive(GOOD, compress=False)),
], ids=["empty", "not-gzip", "not-tar", "truncated", "bad-first-header"])
def test_a_broken_archive_is_refused(tmp_path, data):
    (tmp_path / "s").mkdir()
    with pytest.raises(session_archive.SessionError, match="broken|unsafe"):
        session_archive.unpack(data, PATHS, tmp_path / "s")


def test_a_file_member_over_a_folder_member_is_refused(tmp_path):
    data = archive(member(".claude", content=b"a file"), member(".claude/inside"))
    (tmp_path / "s").mkdir()
    with pytest.raises(session_archive.SessionError, match="broken"):
        session_archive.unpack(data, PATHS, tmp_path / "s")


def test_modes_from_the_archive_are_tamed(tmp_path):
    data = archive(member(".claude/setuid", content=b"#!/bin/sh\n", mode=0o4777))
    home = restored_into(tmp_path, data)
    mode = (home / ".claude" / "setuid").stat().st_mode
    assert not mode & 0o4000 and not mode & 0o002


# ---------------------------------------------------------------- names and the work directory

def test_the_session_id_is_a_stable_uuid_per_task_and_role():
    first = sessions.session_id("task_abc", "dev")
    assert first == sessions.session_id("task_abc", "dev")
    assert uuid.UUID(first).version == 4 and str(uuid.UUID(first)) == first
    assert len({first, sessions.session_id("task_abc", "qa"), sessions.session_id("task_abd", "dev")}) == 3
    assert sessions.state_path("task_abc", "dev") == "/tasks/task_abc/state/sessions%2Fdev"


def test_the_work_directory_is_stable_per_task_and_role_and_held_while_used(tmp_path):
    first = sessions.stable_workdir(tmp_path, "task_1", "dev")
    assert first is not None and first.path == tmp_path / "baton-session-task_1-dev"
    (first.path / "left").write_text("by this job")
    assert sessions.stable_workdir(tmp_path, "task_1", "dev") is None          # held
    other = sessions.stable_workdir(tmp_path, "task_1", "qa")
    assert other is not None and other.path != first.path
    other.release()
    first.release()
    assert not list(tmp_path.glob(".*.lock"))
    again = sessions.stable_workdir(tmp_path, "task_1", "dev")                # a dead job's leftover goes
    assert again is not None and again.path == first.path and list(again.path.iterdir()) == []
    again.release()
    assert sessions.stable_workdir(tmp_path, "../task", "dev") is None
    (tmp_path / "baton-session-task_2-dev").symlink_to(tmp_path / "elsewhere")
    assert sessions.stable_workdir(tmp_path, "task_2", "dev") is None
    assert not list(tmp_path.glob(".*.lock"))


# ---------------------------------------------------------------- the bounded download

@pytest.fixture
def storage():
    """A local HTTP server answering GET /<n> with n bytes."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"z" * int(self.path.strip("/"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_download_is_refused_past_its_limit(storage):
    assert sessions.download_bounded(f"{storage}/1000", 1000) == b"z" * 1000
    with pytest.raises(session_archive.SessionError, match="larger than"):
        sessions.download_bounded(f"{storage}/1001", 1000)
    with pytest.raises(ApiError):
        sessions.download_bounded("file:///etc/passwd", 1000)


def test_what_the_agent_made_unreadable_is_left_out(tmp_path, monkeypatch):
    """Files and folders the runner may not open are left out of the archive. Permissions stop no
    one when the tests run as root (CI does), so the refusals are the kernel's answers, played by
    ``os.open`` for those two names."""
    home = session_home(tmp_path)
    locked = home / CLAUDE / "locked"
    locked.mkdir()
    (locked / "inside").write_text("x")
    (home / CLAUDE / "unreadable.txt").write_text("y")
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):
        if os.fsdecode(path) in ("locked", "unreadable.txt"):
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(session_archive.os, "open", refusing_open)
    data, _, _ = session_archive.pack(home, PATHS)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    assert ".claude/locked/inside" not in names and ".claude/unreadable.txt" not in names
    assert ".claude/projects/-work-repo/5f0c.jsonl" in names
