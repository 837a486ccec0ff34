"""The runner's hygiene, unit by unit: what the agent's environment holds, how prompts are filled,
how git runs in a working copy the agent controlled, how a job ends when something breaks, and
that nothing of a job is left on disk.

Real git repositories made in tmp_path, real subprocesses; the Baton API is a small fake object
that records what the runner sent (``FakeBaton``).
"""

from __future__ import annotations

import ctypes
import http.server
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Optional

import pytest

from chalicelib.adapters import launchers
from chalicelib.adapters.launchers import EcsLauncher, LocalLauncher, docker_command, job_environment
from chalicelib.agent import runner
from chalicelib.agent.client import ApiError
from chalicelib.agent.work import (agent_environment, git, git_config_of, git_environment, prepare_repository,
                                   publish_changes, remove_tree, render)
from chalicelib.domain.enums import Role
from chalicelib.domain.roles import Executor, RoleSpec, digest_of
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bt_" + "T" * 43          # shaped like a job token
CODE = "bl_" + "L" * 43           # shaped like a launch code
TASK_ID = "task_hygiene01"
RUN_ID = "run_hygiene01"
BRANCH = f"baton/{RUN_ID}/{TASK_ID}"


# ---------------------------------------------------------------- the agent's environment

def test_the_agent_environment_is_an_allow_list(tmp_path):
    source = {
        "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "TERM": "xterm",
        "HOME": "/root", "TMPDIR": "/var/tmp", "USER": "root", "SSH_AUTH_SOCK": "/tmp/agent.sock",
        "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "MOTO_PORT": "5000", "PYTHONPATH": str(ROOT), "BATON_API_KEY": TOKEN, "BATON_LAUNCH_CODE": CODE,
        "BATON_API_URL": "http://127.0.0.1:8000", "BATON_JOB": "{}",
        "BATON_AGENT_ENV": " ANTHROPIC_API_KEY, AWS_SECRET_ACCESS_KEY,aws_session_token,MOTO_PORT,PYTHONPATH,"
                           "BATON_API_KEY,BATON_LAUNCH_CODE,LEAKY,EMBEDDED,NOT_SET,bad name,",
        "ANTHROPIC_API_KEY": "sk-ant-test", "aws_session_token": "x", "LEAKY": CODE,
        "EMBEDDED": f"Bearer {TOKEN}", "NOT_GRANTED": "hidden",
    }
    descriptors = {"BATON_TASK_ID": TASK_ID, "BATON_STAGE": "dev", "BATON_TASK_TITLE": "t",
                   "BATON_RUNNER_PID": "123", "BATON_API_URL": "http://127.0.0.1:8000", "BATON_API_KEY": TOKEN,
                   "BATON_TASK_DESCRIPTION": TOKEN}
    env = agent_environment(descriptors, tmp_path / "home", tmp_path / "tmp", source)
    assert env == {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "TERM": "xterm",
                   "HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path / "tmp"),
                   "ANTHROPIC_API_KEY": "sk-ant-test", "BATON_TASK_ID": TASK_ID, "BATON_STAGE": "dev",
                   "BATON_TASK_TITLE": "t"}


def test_git_gets_a_scrubbed_environment(tmp_path, monkeypatch):
    """What git passes to a command it runs (an alias) is what the runner gave it: nothing of the
    runner's own environment but PATH and LANG."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("BATON_API_KEY", TOKEN)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "from the runner's environment")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("LANG", "C.UTF-8")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[alias]\n\tleak = !echo global config was read\n")
    assert git_environment(home) == {"PATH": os.environ["PATH"], "HOME": str(home), "GIT_TERMINAL_PROMPT": "0",
                                     "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LANG": "C.UTF-8"}
    seen = git(["-c", "alias.showenv=!env", "showenv"], tmp_path, home)
    assert seen.returncode == 0, seen.stderr
    names = dict(line.split("=", 1) for line in seen.stdout.splitlines() if "=" in line)
    assert names["HOME"] == str(home) and names["GIT_TERMINAL_PROMPT"] == "0"
    assert names["GIT_CONFIG_NOSYSTEM"] == "1"
    assert not [n for n in names if n.startswith(("AWS_", "BATON_", "PYTHON")) or n == "GIT_AUTHOR_NAME"]
    assert TOKEN not in seen.stdout
    assert git(["leak"], tmp_path, home).returncode != 0    # ~/.gitconfig is not read


# ---------------------------------------------------------------- prompts

@pytest.mark.parametrize("template, expected", [
    ("Task {task_id}: {task_title}", "Task T1: add {iteration}"),
    ('Answer with {"a": 1, "b": [1, 2]}', 'Answer with {"a": 1, "b": [1, 2]}'),
    ("{unknown} stays", "{unknown} stays"),
    ("{0} and {} and {a.b} and {task_id!r} and {task_id:>9}", "{0} and {} and {a.b} and {task_id!r} and {task_id:>9}"),
    ("a lone { and a lone } and {{task_id}}", "a lone { and a lone } and {T1}"),
    ("{iteration}{iteration}", "22"),
    ("{", "{"),
])
def test_render_fills_known_placeholders_only(template, expected):
    # a value holding a placeholder is not filled again
    assert render(template, {"task_id": "T1", "task_title": "add {iteration}", "iteration": 2}) == expected


# ---------------------------------------------------------------- git in a working copy the agent controlled

def make_origin(tmp_path: Path) -> Path:
    work, bare = tmp_path / "seed", tmp_path / "origin.git"
    work.mkdir(parents=True)
    (work / "README.md").write_text("hello\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "start"]):
        subprocess.run(["git", *args], cwd=work, check=True, capture_output=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, capture_output=True)
    return bare


def branch_files(bare: Path, branch: str) -> list[str]:
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", branch], cwd=bare, capture_output=True, text=True)
    return listed.stdout.split() if listed.returncode == 0 else []


def branch_log(bare: Path, branch: str) -> str:
    return subprocess.run(["git", "log", "--format=%s", branch], cwd=bare, capture_output=True, text=True).stdout


HOOKS = ("pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "pre-push", "reference-transaction",
         "post-index-change", "pre-auto-gc")


def install_hooks(directory: Path, records: Path, tag: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for hook in HOOKS:
        path = directory / hook
        path.write_text(f'#!/bin/sh\nenv > "{records}/{hook}-{tag}.$$"\nexit 0\n')
        path.chmod(0o755)


def test_the_runner_commit_and_push_run_none_of_the_agents_hooks(tmp_path):
    bare = make_origin(tmp_path)
    home, repo, records = tmp_path / "home", tmp_path / "repo", tmp_path / "records"
    home.mkdir()
    records.mkdir()
    assert "created" in prepare_repository(f"file://{bare}", "main", BRANCH, repo, home)
    # The agent installs hooks, points core.hooksPath elsewhere and sets an fsmonitor command.
    install_hooks(repo / ".git" / "hooks", records, "git-dir")
    install_hooks(tmp_path / "elsewhere", records, "hooks-path")
    monitor = tmp_path / "monitor.sh"
    monitor.write_text(f'#!/bin/sh\nenv > "{records}/fsmonitor.$$"\nexit 1\n')
    monitor.chmod(0o755)
    # Positive control: a plain git commit in this working copy runs them.
    plain = subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "agent's own"], cwd=repo,
                           capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    assert any(p.name.startswith("pre-commit-git-dir") for p in records.iterdir())
    for record in records.iterdir():
        record.unlink()
    subprocess.run(["git", "config", "core.hooksPath", str(tmp_path / "elsewhere")], cwd=repo, check=True)
    subprocess.run(["git", "config", "core.fsmonitor", str(monitor)], cwd=repo, check=True)
    (repo / "feature.txt").write_text("work\n")
    # Without the config put back (config=None), the -c overrides alone keep them off.
    said = publish_changes(repo, BRANCH, "runner commit", home, config=None)
    assert said == f"pushed {BRANCH}"
    assert sorted(p.name for p in records.iterdir()) == []
    assert "feature.txt" in branch_files(bare, BRANCH)
    assert branch_log(bare, BRANCH).splitlines()[0] == "runner commit"


def test_publishing_puts_the_runner_git_config_back(tmp_path):
    bare = make_origin(tmp_path)
    decoy = make_origin(tmp_path / "decoy")
    home, repo = tmp_path / "home", tmp_path / "repo"
    home.mkdir()
    prepare_repository(f"file://{bare}", "main", BRANCH, repo, home)
    saved = git_config_of(repo)
    assert saved and b"agent@baton.local" in saved
    # The agent re-points origin at a repository of its choosing.
    subprocess.run(["git", "remote", "set-url", "origin", f"file://{decoy}"], cwd=repo, check=True)
    (repo / "feature.txt").write_text("work\n")
    assert publish_changes(repo, BRANCH, "runner commit", home, config=saved) == f"pushed {BRANCH}"
    assert "feature.txt" in branch_files(bare, BRANCH)
    assert branch_files(decoy, BRANCH) == []


def test_a_url_is_never_read_as_an_option(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    marker = tmp_path / "pwned"
    url = f"--upload-pack=touch {marker}"
    with pytest.raises(RuntimeError, match="git clone") as failed:
        prepare_repository(url, "main", BRANCH, tmp_path / "repo", home)
    assert f"repository '{url}' does not exist" in str(failed.value)   # git read it as the repository
    assert not marker.exists()


def test_remove_tree_removes_what_the_agent_locked_and_follows_no_link(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    work = tmp_path / "work"
    (work / "repo" / "locked" / "deeper").mkdir(parents=True)
    (work / "repo" / "locked" / "deeper" / "f").write_text("x")
    (work / "repo" / "link").symlink_to(outside)
    (work / "repo" / "dirlink").symlink_to(tmp_path)
    (work / "repo" / "locked" / "deeper").chmod(0o500)
    (work / "repo" / "locked").chmod(0o000)
    remove_tree(work)
    assert not work.exists()
    assert outside.read_text() == "keep me"


# ---------------------------------------------------------------- a whole job against a fake API

class FakeBaton:
    """Stands in for BatonClient: answers what the runner asks, records what it sends."""

    def __init__(self, config: dict[str, Any], repository_url: str, title: str = "add feature"):
        self.config = config
        self.repository_url = repository_url
        self.title = title
        self.claim_id: Optional[str] = None
        self.sent: list[tuple[str, Any, Optional[str]]] = []
        self.lock = threading.Lock()

    def task(self) -> dict[str, Any]:
        return {"id": TASK_ID, "run_id": RUN_ID, "project_id": "proj", "title": self.title, "description": "d",
                "stage": "dev", "iteration": 1, "source": "planned"}

    def for_claim(self, claim_id: str) -> "FakeBaton":
        self.claim_id = claim_id
        return self

    def get(self, path: str) -> Any:
        if path == f"/tasks/{TASK_ID}/context":
            return {"task": self.task(), "role": {"role": "dev", "version": 1},
                    "run": {"title": "r", "stages": ["dev", "qa"], "pinned_roles": {"dev": self.config["digest"]}},
                    "project": {"name": "P", "repository_url": self.repository_url, "primary_branch": "main"},
                    "handoffs": [], "proofs": []}
        if path == "/roles/dev/versions":
            return {"items": [self.config]}
        raise AssertionError(f"unexpected GET {path}")

    def post_status(self, path: str, body: Any = None) -> tuple[int, Any]:
        assert path == "/queue/claim"
        return 200, {"task": self.task(), "claim": {"claim_id": "clm_fake", "expires_at": "2099-01-01T00:00:00Z"}}

    def post(self, path: str, body: Any = None, headers: Optional[dict[str, str]] = None) -> Any:
        with self.lock:
            self.sent.append((path, body, self.claim_id))
        if path.endswith("/heartbeat"):
            return {"expires_at": "2099-01-01T00:00:00Z"}
        if path.endswith("/findings"):
            return {"verdict": "pass", "findings": 0, "created_tasks": []}
        return {}

    def bodies(self, suffix: str) -> list[Any]:
        with self.lock:
            return [body for path, body, _ in self.sent if path.endswith(suffix)]


def role_config(command: str, prompt: str = "Work on {task_title}. Example: {\"a\": 1} {unknown}") -> dict[str, Any]:
    spec = RoleSpec(prompt=prompt, executor=Executor.container, command=command, required_proofs=[],
                    timeout_seconds=120, heartbeat_seconds=60)
    return {**spec.model_dump(mode="json"), "role": "dev", "version": 1, "digest": digest_of(Role.dev, spec)}


@pytest.fixture
def uploads(monkeypatch):
    """Proof uploads recorded instead of sent to S3 (the upload itself is tested elsewhere)."""
    kept: list[tuple[str, str, bytes]] = []

    def upload(client, task_id, path, proof_type):
        kept.append((path.name, proof_type, path.read_bytes()))
        return {"id": f"prf_{len(kept)}"}

    monkeypatch.setattr(runner, "upload_proof", upload)
    return kept


def write_agent(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


def heartbeats_stopped() -> bool:
    for thread in [t for t in threading.enumerate() if isinstance(t, runner.Heartbeat)]:
        thread.join(timeout=10)
        if thread.is_alive():
            return False
    return True


PRYING_AGENT = r"""
set -e
OUT="$1"
env > "$OUT/agent-env.txt"
cp "$BATON_PROMPT_FILE" "$OUT/prompt.md"
echo "$HOME $TMPDIR $BATON_WORKDIR" > "$OUT/dirs.txt"
pwd > "$OUT/cwd.txt"
# hooks in .git/hooks, then a commit of its own (they run: a positive control), then hooksPath and
# fsmonitor set in .git/config and ~/.gitconfig for the runner's commit
for hook in pre-commit commit-msg post-commit pre-push reference-transaction; do
  printf '#!/bin/sh\nenv > "%s/hook-%s.$$"\n' "$OUT" "$hook" > .git/hooks/$hook
  chmod +x .git/hooks/$hook
done
AGENT_SELF=1 git commit -q --allow-empty -m "agent's own commit"
mkdir -p "$OUT/evil"
cp .git/hooks/* "$OUT/evil/"
printf '#!/bin/sh\nenv > "%s/hook-fsmonitor.$$"\nexit 1\n' "$OUT" > "$OUT/monitor.sh"
chmod +x "$OUT/monitor.sh"
git config core.hooksPath "$OUT/evil"
git config core.fsmonitor "$OUT/monitor.sh"
printf '[core]\n\thooksPath = %s/evil\n' "$OUT" > "$HOME/.gitconfig"
echo "the agent's work" > feature.txt
echo '{"summary": "implemented it", "confidence": "high"}' > "$BATON_PROOFS_DIR/handoff.json"
echo "a proof" > "$BATON_PROOFS_DIR/notes.txt"
ln -s /etc/hostname "$BATON_PROOFS_DIR/linked.txt"
echo "prying agent done"
"""


def test_a_job_gives_the_agent_nothing_secret_runs_no_hook_and_leaves_nothing(tmp_path, monkeypatch, uploads):
    bare = make_origin(tmp_path)
    out, jobs = tmp_path / "out", tmp_path / "jobs"
    out.mkdir()
    for name, value in {"AWS_SECRET_ACCESS_KEY": "secret", "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
                        "MOTO_PORT": "5000", "PYTHONPATH": str(ROOT), "BATON_API_KEY": TOKEN,
                        "BATON_LAUNCH_CODE": CODE, "BATON_API_URL": "http://127.0.0.1:1",
                        "BATON_AGENT_ENV": "ANTHROPIC_API_KEY,AWS_SECRET_ACCESS_KEY",
                        "ANTHROPIC_API_KEY": "sk-ant-test"}.items():
        monkeypatch.setenv(name, value)
    script = write_agent(tmp_path, PRYING_AGENT)
    client = FakeBaton(role_config(f"sh {script} {out}"), f"file://{bare}")
    assert runner.run_job({"job_id": "job_h1", "task_id": TASK_ID, "stage": "dev", "attempt": 1}, client, jobs) == 0

    env = dict(line.split("=", 1) for line in (out / "agent-env.txt").read_text().splitlines() if "=" in line)
    assert not [n for n in env if n.startswith(("AWS_", "MOTO_", "PYTHON")) or n in (
        "BATON_API_KEY", "BATON_LAUNCH_CODE", "BATON_API_URL", "BATON_RUNNER_PID", "BATON_AGENT_ENV", "BATON_JOB")]
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-test" and env["BATON_TASK_ID"] == TASK_ID
    assert TOKEN not in (out / "agent-env.txt").read_text() and CODE not in (out / "agent-env.txt").read_text()
    home, scratch_tmp, workdir = (out / "dirs.txt").read_text().split()
    assert env["HOME"] == home and Path(home).parent == Path(workdir) and Path(scratch_tmp).parent == Path(workdir)
    assert Path(workdir).parent == jobs
    # The prompt: known placeholders filled, JSON and unknown braces kept.
    assert (out / "prompt.md").read_text() == 'Work on add feature. Example: {"a": 1} {unknown}'
    # Hooks ran for the agent's own commit only (each record carries AGENT_SELF=1).
    records = sorted(out.glob("hook-*"))
    assert any(r.name.startswith("hook-pre-commit") for r in records)
    assert all("AGENT_SELF=1" in r.read_text() for r in records), [r.name for r in records]
    # The runner committed the agent's change and pushed it.
    assert "feature.txt" in branch_files(bare, BRANCH)
    assert branch_log(bare, BRANCH).splitlines()[0].startswith("baton: dev of add feature")
    # Proofs: the log and notes.txt, not the symlink.
    assert sorted(name for name, _, _ in uploads) == ["agent-output.log", "notes.txt"]
    # Handoff and advance, under the claim.
    assert client.bodies("/handoffs")[0]["summary"] == "implemented it"
    (advanced,) = client.bodies("/advance")
    assert advanced["result"] == "pass" and advanced["claim_id"] == "clm_fake"
    assert all(claim == "clm_fake" for path, _, claim in client.sent)
    # Nothing of the job is left, and the heartbeats stopped.
    assert not Path(workdir).exists() and list(jobs.iterdir()) == []
    assert heartbeats_stopped()


def test_a_clone_that_fails_fails_the_stage_without_running_the_agent(tmp_path, uploads):
    marker = tmp_path / "agent-ran"
    client = FakeBaton(role_config(f"touch {marker}"), f"file://{tmp_path}/no-such-repo.git")
    jobs = tmp_path / "jobs"
    code = runner.run_job({"job_id": "job_h2", "task_id": TASK_ID, "stage": "dev", "attempt": 1}, client, jobs)
    assert code == runner.EXIT_RUNNER_FAILED
    (advanced,) = client.bodies("/advance")
    assert advanced["result"] == "fail" and "git clone" in advanced["notes"]
    assert advanced["notes"].startswith("the runner could not finish the job: RuntimeError")
    assert not marker.exists() and list(jobs.iterdir()) == [] and uploads == []
    assert heartbeats_stopped()


@pytest.mark.parametrize("content, why", [
    ("[1, 2]", "handoff.json holds a JSON list, not an object"),
    ('"just text"', "handoff.json holds a JSON str, not an object"),
    ("{not json", "handoff.json is not valid JSON"),
])
def test_a_handoff_that_is_not_an_object_fails_the_stage_with_a_generated_handoff(tmp_path, uploads, content, why):
    bare = make_origin(tmp_path)
    script = write_agent(tmp_path, f"echo '{content}' > \"$BATON_PROOFS_DIR/handoff.json\"\n")
    client = FakeBaton(role_config(f"sh {script}"), f"file://{bare}")
    jobs = tmp_path / "jobs"
    assert runner.run_job({"job_id": "job_h3", "task_id": TASK_ID, "stage": "dev", "attempt": 1}, client, jobs) == 0
    (handoff,) = client.bodies("/handoffs")
    assert handoff["summary"] == "dev failed (exit 0)." and handoff["to_role"] == "dev"
    (advanced,) = client.bodies("/advance")
    assert advanced["result"] == "fail" and why in advanced["notes"]
    assert list(jobs.iterdir()) == []


def test_an_exception_while_uploading_fails_the_stage_and_cleans_up(tmp_path, monkeypatch):
    bare = make_origin(tmp_path)

    def broken_upload(client, task_id, path, proof_type):
        raise OSError("disk on fire")

    monkeypatch.setattr(runner, "upload_proof", broken_upload)
    client = FakeBaton(role_config("echo working"), f"file://{bare}")
    monkeypatch.setattr(runner.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    code = runner.run_job({"job_id": "job_h4", "task_id": TASK_ID, "stage": "dev", "attempt": 1}, client)
    assert code == runner.EXIT_RUNNER_FAILED
    (advanced,) = client.bodies("/advance")
    assert advanced["result"] == "fail" and "OSError: disk on fire" in advanced["notes"]
    assert list((tmp_path / "tmp").iterdir()) == []     # no baton-task_* directory left behind
    assert heartbeats_stopped()


def test_the_agent_leaves_no_process_running_after_it_exits(tmp_path, uploads):
    bare = make_origin(tmp_path)
    pidfile = tmp_path / "straggler.pid"
    script = write_agent(tmp_path, f"sleep 300 &\necho $! > {pidfile}\nexit 0\n")
    client = FakeBaton(role_config(f"sh {script}"), f"file://{bare}")
    assert runner.run_job({"job_id": "job_h5", "task_id": TASK_ID, "stage": "dev", "attempt": 1}, client,
                          tmp_path / "jobs") == 0
    stat = Path(f"/proc/{int(pidfile.read_text())}/stat")

    def dead() -> bool:   # gone, or a zombie waiting for its new parent to reap it
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            return True

    wait_for(dead, "the agent's background process to be killed", 20)   # it would sleep 300 s otherwise


def test_a_heartbeat_refused_with_401_means_the_job_ended():
    class Ended:
        def post(self, path, body=None, headers=None):
            raise ApiError(401, "job_ended", "the job this token was issued for has ended")

    beat = runner.Heartbeat(Ended(), TASK_ID, "clm_x", 0.01, 30)
    beat.start()
    beat.join(timeout=10)
    assert not beat.is_alive() and beat.lost and "ended" in beat.lost


# ---------------------------------------------------------------- the launch code and the token

class TokenExchange(http.server.BaseHTTPRequestHandler):
    spent: set[str] = set()
    seen: list[tuple[str, str, bytes]] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        type(self).seen.append((self.path, auth, body))
        if auth != f"Bearer {CODE}" or CODE in type(self).spent:
            payload, status = {"error": {"code": "launch_code_used", "message": "used"}}, 401
        else:
            type(self).spent.add(CODE)
            payload, status = {"token": TOKEN, "expires_at": "2099-01-01T00:00:00Z", "job_id": "job_x",
                               "task_id": TASK_ID, "stage": "dev"}, 201
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def exchange():
    TokenExchange.spent, TokenExchange.seen = set(), []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenExchange)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_launch_code_buys_the_token_once(exchange):
    assert runner.fetch_job_token(exchange, "job_x", CODE) == TOKEN
    with pytest.raises(ApiError) as refused:
        runner.fetch_job_token(exchange, "job_x", CODE)
    assert refused.value.status == 401
    assert [(p, a, b) for p, a, b in TokenExchange.seen] == [("/jobs/job_x/token", f"Bearer {CODE}", b"{}")] * 2


def test_the_launch_code_comes_from_the_environment_or_the_first_line_of_stdin():
    assert runner.read_launch_code({"BATON_LAUNCH_CODE": CODE}, io.StringIO("bl_other\n")) == CODE
    assert runner.read_launch_code({}, io.StringIO(f"{CODE}\nmore\n")) == CODE
    assert runner.read_launch_code({}, io.StringIO("")) == ""
    assert runner.read_launch_code({}, None) == ""


def test_the_runner_makes_itself_undumpable_first():
    probe = ("import ctypes; from chalicelib.agent.runner import forbid_inspection; "
             "libc = ctypes.CDLL(None); before = libc.prctl(3, 0, 0, 0, 0); ok = forbid_inspection(); "
             "print(before, ok, libc.prctl(3, 0, 0, 0, 0))")
    shown = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert shown.stdout.split() == ["1", "True", "0"], shown.stderr
    assert ctypes.CDLL(None).prctl(3, 0, 0, 0, 0) == 1   # this (test) process was not touched


def test_the_runner_process_main_reads_the_code_from_stdin_and_exchanges_it(exchange, tmp_path):
    """``python -m chalicelib.agent.runner`` as the launcher starts it: no PYTHONPATH, the code on
    stdin. The fake API hands out the token, then the runner asks for the context (404 here)."""
    env = {"PATH": os.environ["PATH"], "BATON_API_URL": exchange,
           "BATON_JOB": json.dumps({"job_id": "job_x", "task_id": TASK_ID, "stage": "dev"})}
    done = subprocess.run([sys.executable, "-m", "chalicelib.agent.runner"], cwd=ROOT, env=env, input=f"{CODE}\n",
                          capture_output=True, text=True, timeout=60)
    assert "ModuleNotFoundError" not in done.stderr
    assert [p for p, _, _ in TokenExchange.seen] == ["/jobs/job_x/token"]
    assert "the API refused" in done.stdout and done.returncode == 5   # GET context answered 501 by the fake
    assert TOKEN not in done.stdout + done.stderr and CODE not in done.stdout + done.stderr


# ---------------------------------------------------------------- launchers

def spec(**extra: Any) -> dict[str, Any]:
    return {"job_id": "job_l1", "task_id": TASK_ID, "run_id": RUN_ID, "project_id": "proj", "stage": "dev",
            "iteration": 1, "attempt": 1, "role": "dev", "role_digest": "d" * 64, "command": "true", "image": None,
            "heartbeat_seconds": 60, "timeout_seconds": 600, "api_url": "http://127.0.0.1:8000",
            "launch_code": CODE, **extra}


def test_job_environment_has_the_api_and_the_job_without_the_code():
    env = job_environment(spec())
    assert set(env) == {"BATON_API_URL", "BATON_JOB"}
    assert "launch_code" not in json.loads(env["BATON_JOB"]) and CODE not in env["BATON_JOB"]


def test_the_local_launcher_gives_the_runner_an_allow_listed_environment_and_the_code_on_stdin(tmp_path, monkeypatch):
    for name, value in {"AWS_SECRET_ACCESS_KEY": "secret", "AWS_ENDPOINT_URL_SQS": "http://x", "MOTO_PORT": "5000",
                        "PYTHONPATH": "/somewhere", "BATON_API_KEY": TOKEN, "SOME_SETTING": "x",
                        "BATON_AGENT_ENV": "ANTHROPIC_API_KEY,MOTO_PORT", "ANTHROPIC_API_KEY": "sk-ant-test",
                        "LC_CTYPE": "C.UTF-8"}.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    out.mkdir()
    fake_python = tmp_path / "python"
    fake_python.write_text(f'#!/bin/sh\nenv > "{out}/env"\necho "$@" > "{out}/args"\npwd > "{out}/cwd"\n'
                           f'cat > "{out}/stdin"\n')
    fake_python.chmod(0o755)
    launcher = LocalLauncher(tmp_path / "work", python=str(fake_python))
    launcher.launch(spec())
    assert launcher.processes["job_l1"].wait(timeout=60) == 0
    env = dict(line.split("=", 1) for line in (out / "env").read_text().splitlines() if "=" in line)
    assert set(env) - {"PWD", "SHLVL", "_", "OLDPWD"} == {
        n for n in os.environ if n in ("PATH", "HOME", "LANG", "TZ") or n.startswith("LC_")} | {
        "TMPDIR", "BATON_API_URL", "BATON_JOB", "BATON_AGENT_ENV", "ANTHROPIC_API_KEY"}
    # the runner's working copies go under the stack's work dir, not the machine's /tmp
    assert Path(env["TMPDIR"]) == tmp_path / "work" / "jobs" / "work"
    assert env["BATON_AGENT_ENV"] == "ANTHROPIC_API_KEY"
    assert (out / "stdin").read_text() == CODE + "\n"
    assert (out / "args").read_text().split() == ["-m", "chalicelib.agent.runner"]
    assert Path((out / "cwd").read_text().strip()) == ROOT
    assert CODE not in (out / "env").read_text() and CODE not in (out / "args").read_text()


def test_docker_gets_names_not_values_no_host_network_and_the_code_on_stdin(monkeypatch):
    source = {"PATH": "/usr/bin", "HOME": "/root", "DOCKER_HOST": "unix:///run/docker.sock", "LANG": "C.UTF-8",
              "AWS_SECRET_ACCESS_KEY": "secret", "BATON_AGENT_ENV": "ANTHROPIC_API_KEY",
              "ANTHROPIC_API_KEY": "sk-ant-test"}
    args, client_env = docker_command(spec(image="baton-agent:1", api_url="http://127.0.0.1:8000/api"), source)
    assert args[:5] == ["docker", "run", "-i", "--rm", "--add-host=host.docker.internal:host-gateway"]
    assert args[-1] == "baton-agent:1" and "--network" not in " ".join(args)
    names = [args[i + 1] for i, a in enumerate(args) if a == "-e"]
    assert sorted(names) == ["ANTHROPIC_API_KEY", "BATON_AGENT_ENV", "BATON_API_URL", "BATON_JOB", "LANG"]
    assert all("=" not in n for n in names)
    assert client_env["BATON_API_URL"] == "http://host.docker.internal:8000/api"
    assert json.loads(client_env["BATON_JOB"])["api_url"] == "http://host.docker.internal:8000/api"
    assert client_env["DOCKER_HOST"] == "unix:///run/docker.sock" and "AWS_SECRET_ACCESS_KEY" not in client_env
    assert CODE not in " ".join(args) and CODE not in json.dumps(client_env)
    assert launchers.container_api_url("https://api.example.com/x") == "https://api.example.com/x"


def test_ecs_overrides_carry_the_job_the_api_and_the_single_use_code():
    class FakeEcs:
        def __init__(self):
            self.calls: list[dict[str, Any]] = []

        def run_task(self, **kwargs):
            self.calls.append(kwargs)
            return {"tasks": [{"taskArn": "arn:aws:ecs:task/1"}], "failures": []}

    ecs = FakeEcs()
    assert EcsLauncher(ecs, "c", "td", ["s"], ["g"]).launch(spec()) == "arn:aws:ecs:task/1"
    (call,) = ecs.calls
    (override,) = call["overrides"]["containerOverrides"]
    env = {e["name"]: e["value"] for e in override["environment"]}
    assert set(env) == {"BATON_JOB", "BATON_API_URL", "BATON_LAUNCH_CODE"}
    assert env["BATON_LAUNCH_CODE"] == CODE and CODE not in env["BATON_JOB"]


def test_a_work_dir_that_cannot_be_made_fails_the_stage(tmp_path, uploads):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    client = FakeBaton(role_config("true"), f"file://{tmp_path}/unused.git")
    code = runner.run_job({"job_id": "job_h6", "task_id": TASK_ID, "stage": "dev", "attempt": 1}, client,
                          blocked / "jobs")
    assert code == runner.EXIT_RUNNER_FAILED
    (advanced,) = client.bodies("/advance")
    assert advanced["result"] == "fail" and "the runner could not finish the job" in advanced["notes"]
    assert heartbeats_stopped()
