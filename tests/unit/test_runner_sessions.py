"""Resumable agents through the runner, against a fake API that keeps the task's state (and a fake
storage behind its presigned forms) and a real git origin in tmp_path: the first job of a task and
role starts a new session and it is saved; the next job (a loop-back, a re-dispatch) gets it back
under HOME and runs the role's ``resume_command``; ``{session_id}`` and BATON_SESSION_ID are the
same for both, and so is the directory the agent works in; saves happen after a failure or a
timeout too, while the command runs (from the heartbeat, only when something changed), and a save
or a restore that fails is a warning in the notes, never the job's failure.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from chalicelib.agent import runner, session_archive, sessions
from chalicelib.agent.client import ApiError
from chalicelib.domain.enums import Role
from chalicelib.domain.roles import Executor, RoleSpec, digest_of

TASK_ID = "task_sessions01"
RUN_ID = "run_sessions01"
SESSION_DIR = ".agent-session"
STATE = f"/tasks/{TASK_ID}/state/sessions%2Fdev"


class FakeBaton:
    """Stands in for BatonClient: one task at stage dev, its role, and the task's state (in
    memory, across jobs); records what the runner sends. ``fail`` makes a state call raise."""

    def __init__(self, config: dict[str, Any], repository_url: str):
        self.config = config
        self.repository_url = repository_url
        self.iteration = 1
        self.state: Optional[dict[str, Any]] = None
        self.versions = 0
        self.pending: Optional[dict[str, Any]] = None
        self.blobs: dict[str, bytes] = {}
        self.fail: dict[str, ApiError] = {}
        self.sent: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def task(self) -> dict[str, Any]:
        return {"id": TASK_ID, "run_id": RUN_ID, "project_id": "proj", "title": "resumable work", "description": "d",
                "stage": "dev", "iteration": self.iteration, "source": "planned"}

    def for_claim(self, claim_id: str) -> "FakeBaton":
        return self

    def get(self, path: str) -> Any:
        if path == f"/tasks/{TASK_ID}/context":
            return {"task": self.task(), "role": {"role": "dev", "version": 1},
                    "run": {"title": "r", "stages": ["dev", "qa"], "pinned_roles": {"dev": self.config["digest"]}},
                    "project": {"name": "P", "repository_url": self.repository_url, "primary_branch": "main"},
                    "handoffs": [], "proofs": []}
        if path == "/roles/dev/versions":
            return {"items": [self.config]}
        if path == STATE:
            self.record(path, None)
            if "get" in self.fail:
                raise self.fail["get"]
            if self.state is None:
                raise ApiError(404, "not_found", f"task {TASK_ID} has no state named 'sessions/dev'")
            return {**{k: v for k, v in self.state.items() if k != "key"}, "value": None,
                    "download_url": f"https://storage.test/{self.state['key']}"}
        raise AssertionError(f"unexpected GET {path}")

    def post_status(self, path: str, body: Any = None) -> tuple[int, Any]:
        return 200, {"task": self.task(), "claim": {"claim_id": "clm_fake", "expires_at": "2099-01-01T00:00:00Z"}}

    def record(self, path: str, body: Any) -> None:
        with self.lock:
            self.sent.append((path, body))

    def post(self, path: str, body: Any = None, headers: Optional[dict[str, str]] = None) -> Any:
        self.record(path, body)
        if path == f"{STATE}/upload":
            if "upload" in self.fail:
                raise self.fail["upload"]
            assert body["content_type"] == "application/octet-stream"
            self.pending = {**body, "key": f"v{self.versions + 1}-{body['sha256'][:12]}"}
            form = {"url": "https://storage.test/upload", "fields": {"key": self.pending["key"]},
                    "expires_at": "2099-01-01T00:00:00Z"}
            return {"upload": form, "name": "sessions/dev", "version": self.versions + 1}
        if path == f"{STATE}/confirm":
            if "confirm" in self.fail:
                raise self.fail["confirm"]
            pending, self.pending = self.pending, None
            assert pending is not None, "a confirmation without an upload"
            data = self.blobs[pending["key"]]
            assert len(data) == pending["size"] and hashlib.sha256(data).hexdigest() == pending["sha256"]
            self.versions += 1
            self.state = {"name": "sessions/dev", "version": self.versions, "size": pending["size"],
                          "sha256": pending["sha256"], "content_type": pending["content_type"], "stored": "s3",
                          "key": pending["key"]}
            return {k: v for k, v in self.state.items() if k != "key"}
        if path.endswith("/usage"):
            return {"task_usage": {}, "run_usage": {}}
        return {}

    def bodies(self, suffix: str) -> list[Any]:
        with self.lock:
            return [body for path, body in self.sent if path.endswith(suffix)]

    def saved_files(self) -> dict[str, str]:
        """The files of the session the state holds now."""
        assert self.state is not None
        with tarfile.open(fileobj=io.BytesIO(self.blobs[self.state["key"]])) as tar:
            return {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}


@pytest.fixture
def storage(monkeypatch):
    """The presigned forms of the fake: uploads land in ``client.blobs``, downloads read them."""
    clients: list[FakeBaton] = []

    def upload(url, fields, filename, content_type, data):
        assert url == "https://storage.test/upload" and content_type == "application/octet-stream"
        clients[-1].blobs[fields["key"]] = data

    def download(url, limit):
        return clients[-1].blobs[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(sessions.transfer, "upload_presigned_post", upload)
    monkeypatch.setattr(sessions, "download_bounded", download)
    return clients


@pytest.fixture
def uploads(monkeypatch):
    kept: list[tuple[str, bytes]] = []

    def upload(client, task_id, path, proof_type):
        kept.append((path.name, path.read_bytes()))
        return {"id": f"prf_{len(kept)}"}

    monkeypatch.setattr(runner, "upload_proof", upload)
    return kept


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def origin(tmp_path) -> str:
    seed, bare = tmp_path / "seed", tmp_path / "origin.git"
    seed.mkdir()
    (seed / "README.md").write_text("hello\n")
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", "-A")
    git(seed, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "base")
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    return f"file://{bare}"


AGENT = r"""
mode="$1"; shift
arg_id="$1"; shift
dir="$HOME/.agent-session"
mkdir -p "$dir"
seen=$(cat "$dir/log.txt" 2>/dev/null | tr '\n' '|')
echo "$mode iteration=$BATON_ITERATION" >> "$dir/log.txt"
printf '%s %s %s\n' "$arg_id" "$BATON_SESSION_ID" "$(pwd)" > "$BATON_PROOFS_DIR/ids.txt"
printf '{"summary": "saw: %s", "notes_for_next": "%s"}' "$seen" "$mode" > "$BATON_PROOFS_DIR/handoff.json"
for step in "$@"; do eval "$step"; done
"""


def role_config(tmp_path: Path, *, session_paths: Optional[list[str]] = None, resume: bool = True,
                resume_command: Optional[str] = None, extra: str = "", timeout_seconds: int = 120,
                heartbeat_seconds: int = 60) -> dict[str, Any]:
    script = tmp_path / "agent.sh"
    script.write_text(AGENT)
    spec = RoleSpec(prompt="Work on {task_title}.", executor=Executor.container,
                    command=f"sh {script} fresh {{session_id}} {extra}",
                    resume_command=(resume_command or f"sh {script} resume {{session_id}} {extra}") if resume else None,
                    session_paths=[SESSION_DIR] if session_paths is None else session_paths,
                    required_proofs=[], timeout_seconds=timeout_seconds, heartbeat_seconds=heartbeat_seconds)
    return {**spec.model_dump(mode="json"), "role": "dev", "version": 1, "digest": digest_of(Role.dev, spec)}


def run(client: FakeBaton, tmp_path: Path, storage: list, job: str = "job_s1") -> int:
    storage.append(client)
    return runner.run_job({"job_id": job, "task_id": TASK_ID, "stage": "dev", "attempt": 1}, client,
                          tmp_path / "jobs")


def ids_of(uploads: list[tuple[str, bytes]]) -> list[list[str]]:
    return [content.decode().split() for name, content in uploads if name == "ids.txt"]


def advanced(client: FakeBaton) -> dict[str, Any]:
    return client.bodies("/advance")[-1]


# ---------------------------------------------------------------- restore → command → save

def test_the_next_job_of_the_task_and_role_resumes_the_saved_session(tmp_path, origin, storage, uploads):
    client = FakeBaton(role_config(tmp_path), origin)
    assert run(client, tmp_path, storage, "job_s1") == 0
    # the first job: no session yet, so the command (not resume_command), and the session is saved
    assert client.bodies("/handoffs")[0]["summary"] == "saw: "
    assert client.bodies("/handoffs")[0]["notes_for_next"] == "fresh"
    assert client.versions == 1
    assert client.saved_files() == {f"{SESSION_DIR}/log.txt": "fresh iteration=1\n"}
    assert "session saved after the command: sessions/dev v1" in advanced(client)["notes"]
    # a loop-back: the role's next iteration gets the session back and resumes it
    client.iteration = 2
    assert run(client, tmp_path, storage, "job_s2") == 0
    second = client.bodies("/handoffs")[1]
    assert second["summary"] == "saw: fresh iteration=1|" and second["notes_for_next"] == "resume"
    assert client.saved_files() == {f"{SESSION_DIR}/log.txt": "fresh iteration=1\nresume iteration=2\n"}
    assert client.versions == 2
    notes = advanced(client)["notes"]
    assert "session restored: sessions/dev v1" in notes and "session saved after the command: sessions/dev v2" in notes
    # {session_id} and BATON_SESSION_ID: one stable id for the task and role, and one directory
    (first_arg, first_env, first_cwd), (second_arg, second_env, second_cwd) = ids_of(uploads)
    assert first_arg == first_env == second_arg == second_env == sessions.session_id(TASK_ID, "dev")
    assert first_cwd == second_cwd == str(tmp_path / "jobs" / f"baton-session-{TASK_ID}-dev" / "repo")
    # nothing of either job is left behind, the lock file included
    assert list((tmp_path / "jobs").iterdir()) == []
    # every state call went to the task's own name
    assert {p for p, _ in client.sent if "/state/" in p} == {STATE, f"{STATE}/upload", f"{STATE}/confirm"}


def test_without_a_resume_command_a_restored_session_runs_the_command(tmp_path, origin, storage, uploads):
    client = FakeBaton(role_config(tmp_path, resume=False), origin)
    assert run(client, tmp_path, storage, "job_r1") == 0
    assert run(client, tmp_path, storage, "job_r2") == 0
    second = client.bodies("/handoffs")[1]
    assert second["notes_for_next"] == "fresh" and second["summary"] == "saw: fresh iteration=1|"


def test_a_role_without_session_paths_touches_no_state_but_has_a_session_id(tmp_path, origin, storage, uploads):
    client = FakeBaton(role_config(tmp_path, session_paths=[]), origin)
    assert run(client, tmp_path, storage) == 0
    assert not [p for p, _ in client.sent if "/state/" in p]
    assert client.bodies("/handoffs")[0]["notes_for_next"] == "fresh"
    (ids,) = ids_of(uploads)
    assert ids[0] == ids[1] == sessions.session_id(TASK_ID, "dev")
    assert "baton-session-" not in ids[2]   # an ordinary temporary work directory


def test_an_unchanged_session_is_not_saved_again(tmp_path, origin, storage, uploads):
    client = FakeBaton(role_config(tmp_path, extra="'true'"), origin)
    assert run(client, tmp_path, storage, "job_u1") == 0
    # the second job gets the session back and leaves it as it was: nothing new to save
    client.config = role_config(tmp_path, resume_command="cat $HOME/.agent-session/log.txt")
    assert run(client, tmp_path, storage, "job_u2") == 0
    assert "session restored: sessions/dev v1" in advanced(client)["notes"]
    assert client.versions == 1 and len(client.bodies(f"{STATE}/upload")) == 1


# ---------------------------------------------------------------- saved whatever the exit

def test_a_failing_command_still_saves_its_session(tmp_path, origin, storage, uploads):
    client = FakeBaton(role_config(tmp_path, extra="'exit 3'"), origin)
    assert run(client, tmp_path, storage) == 0
    assert advanced(client)["result"] == "fail" and "command exited 3" in advanced(client)["notes"]
    assert client.saved_files() == {f"{SESSION_DIR}/log.txt": "fresh iteration=1\n"}


def test_a_command_that_times_out_still_saves_its_session(tmp_path, origin, storage, uploads):
    client = FakeBaton(role_config(tmp_path, extra="'sleep 30'", timeout_seconds=1), origin)
    started = time.monotonic()
    assert run(client, tmp_path, storage) == 0
    assert time.monotonic() - started < 25
    assert advanced(client)["result"] == "fail" and "command exited 124" in advanced(client)["notes"]
    assert client.saved_files() == {f"{SESSION_DIR}/log.txt": "fresh iteration=1\n"}


def test_saves_happen_while_the_command_runs_only_when_something_changed(tmp_path, origin, storage, uploads,
                                                                          monkeypatch):
    monkeypatch.setattr(sessions, "SAVE_INTERVAL_SECONDS", 0.5)
    steps = ["'sleep 3'", "'echo more >> $HOME/.agent-session/log.txt'", "'sleep 3'"]
    client = FakeBaton(role_config(tmp_path, extra=" ".join(steps), heartbeat_seconds=1), origin)
    assert run(client, tmp_path, storage) == 0
    notes = advanced(client)["notes"]
    while_running = notes.count("session saved while the command runs")
    # the first line, then the second: two saves at most while it runs (the sleeps change nothing)
    assert 1 <= while_running <= 2, notes
    assert client.versions == while_running + ("session saved after the command" in notes)
    assert client.saved_files() == {f"{SESSION_DIR}/log.txt": "fresh iteration=1\nmore\n"}
    assert len(client.bodies(f"{STATE}/upload")) == client.versions


# ---------------------------------------------------------------- failures are warnings

@pytest.mark.parametrize("call, error", [
    ("upload", ApiError(500, "internal", "the state store is down")),
    ("upload", ApiError(422, "task_cap_reached", "task already has 5000 state versions")),
    ("confirm", ApiError(422, "checksum_mismatch", "the uploaded bytes are not the size and sha256 announced")),
])
def test_a_save_that_fails_does_not_fail_the_job(tmp_path, origin, storage, uploads, call, error):
    client = FakeBaton(role_config(tmp_path), origin)
    client.fail[call] = error
    assert run(client, tmp_path, storage) == 0
    result = advanced(client)
    assert result["result"] == "pass"
    assert f"session not saved after the command: ApiError: {error}" in result["notes"]
    assert client.state is None


def test_a_storage_that_refuses_the_upload_does_not_fail_the_job(tmp_path, origin, storage, uploads, monkeypatch):
    def refused(*args):
        raise ApiError(403, "AccessDenied", "the upload to storage was refused: Policy Check Failed")

    monkeypatch.setattr(sessions.transfer, "upload_presigned_post", refused)
    client = FakeBaton(role_config(tmp_path), origin)
    assert run(client, tmp_path, storage) == 0
    assert advanced(client)["result"] == "pass" and "Policy Check Failed" in advanced(client)["notes"]


def hostile_archive() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        content = b"fresh iteration=1\n"
        good = tarfile.TarInfo(f"{SESSION_DIR}/log.txt")
        good.size = len(content)
        tar.addfile(good, io.BytesIO(content))
        link = tarfile.TarInfo(f"{SESSION_DIR}/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
    return raw.getvalue()


@pytest.mark.parametrize("stored, why", [
    ({"data": hostile_archive()}, "unsafe archive"),
    ({"data": b"\x1f\x8b not really gzip"}, "the archive is broken"),
    ({"data": b"x", "sha256": "0" * 64}, "not the size and sha256"),
    ({"data": b"x", "content_type": "application/json"}, "not application/octet-stream"),
    ({"data": b"x", "size": session_archive.MAX_ARCHIVE_BYTES + 1}, "is not between"),
], ids=["hostile", "broken", "checksum", "json", "too-large"])
def test_a_saved_session_that_cannot_be_restored_starts_a_new_one(tmp_path, origin, storage, uploads, stored, why):
    client = FakeBaton(role_config(tmp_path), origin)
    data = stored["data"]
    client.blobs["planted"] = data
    client.versions = 1
    client.state = {"name": "sessions/dev", "version": 1, "size": stored.get("size", len(data)),
                    "sha256": stored.get("sha256", hashlib.sha256(data).hexdigest()),
                    "content_type": stored.get("content_type", "application/octet-stream"), "key": "planted"}
    assert run(client, tmp_path, storage) == 0
    result = advanced(client)
    assert result["result"] == "pass" and "session not restored" in result["notes"] and why in result["notes"]
    handoff = client.bodies("/handoffs")[0]
    assert handoff["notes_for_next"] == "fresh" and handoff["summary"] == "saw: "   # the command, on a new session
    assert client.saved_files() == {f"{SESSION_DIR}/log.txt": "fresh iteration=1\n"}   # and that one is saved


def test_a_state_that_cannot_be_read_starts_a_new_session(tmp_path, origin, storage, uploads):
    client = FakeBaton(role_config(tmp_path), origin)
    client.fail["get"] = ApiError(0, "unreachable", "cannot reach the Baton API")
    assert run(client, tmp_path, storage) == 0
    assert advanced(client)["result"] == "pass" and "session not restored" in advanced(client)["notes"]
    assert client.bodies("/handoffs")[0]["notes_for_next"] == "fresh"


def test_an_inline_state_value_is_not_taken_for_a_session(tmp_path, origin, storage, uploads, monkeypatch):
    client = FakeBaton(role_config(tmp_path), origin)
    original = client.get

    def get(path: str) -> Any:
        if path == STATE:
            return {"name": "sessions/dev", "version": 1, "size": 2, "sha256": "0" * 64,
                    "content_type": "application/json", "value": {"a": 1}, "download_url": None}
        return original(path)

    client.get = get   # type: ignore[method-assign]
    assert run(client, tmp_path, storage) == 0
    assert "is not a session archive" in advanced(client)["notes"]


# ---------------------------------------------------------------- the keeper on its own

def test_a_tick_never_waits_for_a_save_and_never_starts_two(tmp_path):
    home = tmp_path / "home"
    (home / SESSION_DIR).mkdir(parents=True)
    (home / SESSION_DIR / "f").write_text("x")
    release = threading.Event()
    calls: list[str] = []

    class SlowClient:
        def post(self, path, body=None):
            calls.append(path)
            release.wait(10)
            raise ApiError(500, "internal", "slow and broken")

    now = [0.0]
    keeper = sessions.SessionKeeper(SlowClient(), TASK_ID, "dev", [SESSION_DIR], home, lambda line: None,
                                    interval=10, clock=lambda: now[0])
    keeper.tick()
    assert calls == []                      # not due yet
    now[0] = 11
    started = time.monotonic()
    keeper.tick()
    keeper.tick()
    now[0] = 30
    keeper.tick()
    assert time.monotonic() - started < 1
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(calls) == 1
    release.set()
    assert keeper.close() is False          # waits for the one under way, then tries once more
    assert len(calls) == 2 and keeper.notes[-1].startswith("session not saved after the command")
    keeper.tick()
    assert len(calls) == 2                  # closed: no more saves

