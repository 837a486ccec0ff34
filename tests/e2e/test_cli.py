"""The ``baton`` CLI against a real local stack (moto server + API + Step Functions + SQS pump).

Commands run through click's CliRunner in this process; the error cases that promise "one line
and an exit code" run ``python -m chalicelib.cli`` as a subprocess, so the real exit status and
stderr are what is checked. Waiting is by polling with a deadline; no outcome depends on timing.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from click.testing import CliRunner

from chalicelib.agent.client import BatonClient
from chalicelib.cli import cli
from chalicelib.cli.errors import ExitCode
from tests.support.waiting import wait_for as wait_until

ROOT = Path(__file__).resolve().parents[2]
REQUEST_LOG = re.compile(r"^127\.0\.0\.1 - - \[")
NO_CONFIG_ENV = {"BATON_API_URL": None, "BATON_API_KEY": None, "BATON_CONFIG": None, "BATON_AGENT_ID": None}


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str


def cli_stderr(stderr: str) -> str:
    """The CLI's stderr without the request lines the in-process API server logs to sys.stderr
    (captured too while a command runs in this process)."""
    return "".join(line for line in stderr.splitlines(keepends=True) if not REQUEST_LOG.match(line))


class Baton:
    """Runs ``baton --api-url URL --api-key KEY ...`` in this process."""

    def __init__(self, url: str, key: str):
        self.url = url
        self.key = key

    def as_key(self, key: str) -> "Baton":
        return Baton(self.url, key)

    def __call__(self, *args: str, input: Optional[str] = None, expect: Optional[int] = 0) -> Outcome:
        result = CliRunner().invoke(cli, ["--api-url", self.url, "--api-key", self.key, *args], input=input,
                                    env=NO_CONFIG_ENV, catch_exceptions=False)
        outcome = Outcome(result.exit_code, result.stdout, cli_stderr(result.stderr))
        if expect is not None:
            assert outcome.exit_code == expect, (args, outcome.exit_code, outcome.stdout, outcome.stderr)
        return outcome

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture(scope="module")
def baton(stack) -> Baton:
    return Baton(stack.api_url, stack.admin_key)


@pytest.fixture(scope="module")
def project(baton) -> str:
    baton("project", "create", "cli-demo", "--name", "CLI demo", "--repo", "https://example.com/cli-demo.git")
    return "cli-demo"


@pytest.fixture(scope="module")
def human(baton, project) -> Baton:
    created = baton.json("keys", "create", "--name", "reviewer", "--principal", "human", "--project", project)
    return baton.as_key(created["key"])


@pytest.fixture(scope="module")
def agent(baton, project) -> Baton:
    created = baton.json("keys", "create", "--name", "bot", "--principal", "agent", "--project", project)
    return baton.as_key(created["key"])


def wait_for(check: Callable[[], Any], what: str, deadline_seconds: float = 90) -> Any:
    return wait_until(check, what, deadline_seconds)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def start_run(baton: Baton, project: str, tmp_path: Path, *extra: str, tasks: str = "- first task\n") -> dict:
    return baton.json("run", "start", "--project", project, "--tasks", write(tmp_path / "tasks.yaml", tasks), *extra)


def claim_when_dispatched(who: Baton, project: str, run_id: str, stage: str = "dev") -> dict:
    """Claim until the stage job has been dispatched (exit 6 until then)."""

    def attempt() -> Optional[dict]:
        result = who("claim", "--stage", stage, "--agent-id", "cli-bot", "--project", project, "--run", run_id,
                     "--json", expect=None)
        if result.exit_code == ExitCode.NOTHING_TO_CLAIM:
            assert "nothing queued" in result.stderr
            return None
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    return wait_for(attempt, f"a {stage} task of {run_id} to be claimable")


# --------------------------------------------------------------------------- errors: one line, a meaningful exit code


def run_cli(*args: str, env: dict[str, Optional[str]], cwd: Path) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in NO_CONFIG_ENV}
    environ.update({k: v for k, v in env.items() if v is not None})
    environ["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "chalicelib.cli", *args], env=environ, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def assert_one_line(stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("baton: ") and "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_a_wrong_api_key_gives_one_line_and_exit_3(stack, tmp_path):
    done = run_cli("project", "list", env={"BATON_API_URL": stack.api_url, "BATON_API_KEY": "bt_not-a-real-key"},
                   cwd=tmp_path)
    assert done.returncode == ExitCode.AUTH
    assert_one_line(done.stderr, "not valid", "401", "BATON_API_KEY")
    assert done.stdout == ""


def test_an_unreachable_api_gives_one_line_and_exit_5(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = run_cli("project", "list", env={"BATON_API_URL": f"http://127.0.0.1:{port}", "BATON_API_KEY": "bt_x"},
                   cwd=tmp_path)
    assert done.returncode == ExitCode.UNREACHABLE
    assert_one_line(done.stderr, "cannot reach the Baton API", str(port))


def test_missing_configuration_says_how_to_configure_and_exits_2(tmp_path):
    done = run_cli("project", "list", env={}, cwd=tmp_path)
    assert done.returncode == ExitCode.USAGE
    assert_one_line(done.stderr, "make up", "BATON_API_URL")


def test_the_config_file_is_found_from_a_subdirectory(stack, tmp_path):
    (tmp_path / ".baton").mkdir()
    (tmp_path / ".baton" / "config.json").write_text(json.dumps({"api_url": stack.api_url,
                                                                 "api_key": stack.admin_key}))
    (tmp_path / "a" / "b").mkdir(parents=True)
    done = run_cli("status", "--json", env={}, cwd=tmp_path / "a" / "b")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["url_source"] == str(tmp_path / ".baton" / "config.json")


def test_a_missing_resource_exits_4_and_a_conflict_exits_1(baton, project):
    missing = baton("project", "show", "no-such-project", expect=ExitCode.NOT_FOUND)
    assert missing.stderr.startswith("baton: ") and "404" in missing.stderr
    taken = baton("project", "create", project, "--repo", "https://example.com/x.git", expect=ExitCode.FAILED)
    assert "409" in taken.stderr


def test_a_bad_body_prints_the_api_details(baton):
    result = baton("project", "create", "Not A Slug", "--repo", "https://example.com/x.git", expect=ExitCode.FAILED)
    assert "400" in result.stderr and "id" in result.stderr


# --------------------------------------------------------------------------- projects


def test_project_create_list_show(baton, project):
    listed = baton("project", "list")
    assert project in listed.stdout and "CLI demo" in listed.stdout
    assert project in [p["id"] for p in baton.json("project", "list")]
    shown = baton("project", "show", project)
    assert "https://example.com/cli-demo.git" in shown.stdout and "main" in shown.stdout
    assert baton.json("project", "show", project)["name"] == "CLI demo"


# --------------------------------------------------------------------------- runs


def test_run_start_from_a_tasks_file_then_show_events_kill(baton, project, tmp_path):
    tasks = ("title: cli run\nstages: [dev, qa]\ntasks:\n"
             "  - title: add login\n    description: OAuth\n    priority: 8\n  - fix the parser\n")
    started = baton("run", "start", "--project", project, "--tasks", write(tmp_path / "t.yaml", tasks),
                    "--max-iterations", "2")
    assert "Started run" in started.stdout and "dev → qa" in started.stdout
    run_id = started.stdout.split("Started run ", 1)[1].split()[0]
    run = baton.json("run", "show", run_id)
    assert run["title"] == "cli run" and run["stages"] == ["dev", "qa"] and run["max_iterations"] == 2
    shown = baton("run", "show", run_id)
    assert "add login" in shown.stdout and "fix the parser" in shown.stdout
    assert run_id in baton("run", "list", "--project", project).stdout

    events = baton("run", "events", run_id)
    assert "run.created" in events.stdout
    lines = [json.loads(line) for line in baton("run", "events", run_id, "--json").stdout.splitlines()]
    assert [e["seq"] for e in lines] == sorted(e["seq"] for e in lines) and lines[0]["action"] == "run.created"

    refused = baton("run", "kill", run_id, input="n\n", expect=ExitCode.USAGE)
    assert "not killed" in refused.stderr
    killed = baton("run", "kill", run_id, "--yes")
    assert "killed" in killed.stdout
    assert baton.json("run", "show", run_id)["status"] == "killed"
    watched = baton("run", "watch", run_id, "--interval", "0.2", expect=ExitCode.FAILED)
    assert "killed" in watched.stdout
    followed = baton("run", "events", run_id, "--follow", "--interval", "0.2")  # ends: the run has ended
    assert "run.killed" in followed.stdout or "killed" in followed.stdout


def test_run_start_refuses_a_bad_tasks_file_clearly(baton, project, tmp_path):
    cases = {
        "- title: ok\n- description: no title\n": "task 2 needs a non-empty title",
        "tasks: [a\n": "line",
        "- title: x\n  owner: me\n": "unknown field(s) owner",
        "- title: x\n  priority: 11\n": "priority must be a whole number from 0 to 10",
        "title: t\n": "has no `tasks:` list",
        "": "is empty",
    }
    for text, message in cases.items():
        result = baton("run", "start", "--project", project, "--tasks", write(tmp_path / "bad.yaml", text),
                       expect=ExitCode.USAGE)
        assert message in result.stderr and "Traceback" not in result.stderr, (text, result.stderr)
    stages = baton("run", "start", "--project", project, "--tasks", write(tmp_path / "ok.yaml", "- a\n"),
                   "--stages", "qa,dev", expect=ExitCode.USAGE)
    assert "pipeline order" in stages.stderr
    missing = baton("run", "start", "--project", project, "--tasks", str(tmp_path / "nope.yaml"),
                    expect=ExitCode.USAGE)
    assert "nope.yaml" in missing.stderr


def test_run_watch_gives_up_with_exit_7_after_its_timeout(baton, project, tmp_path):
    run = start_run(baton, project, tmp_path, "--title", "idle run")
    result = baton("run", "watch", run["id"], "--interval", "0.2", "--timeout", "0.5", expect=ExitCode.TIMED_OUT)
    assert "running" in result.stdout  # plain progress lines without a terminal
    assert "gave up watching" in result.stderr
    baton("run", "kill", run["id"], "--yes")


# --------------------------------------------------------------------------- an external agent


def test_an_external_agent_claims_heartbeats_and_advances(baton, agent, project, tmp_path):
    baton("roles", "set", "dev", "--no-required-proofs", "--executor", "external")
    run = start_run(baton, project, tmp_path, "--title", "external work", "--stages", "dev", "--no-deploy-gate",
                    tasks="- title: external task\n")
    claimed = claim_when_dispatched(agent, project, run["id"])
    task_id, claim_id = claimed["task"]["id"], claimed["claim"]["claim_id"]
    assert claimed["task"]["title"] == "external task" and claimed["task"]["status"] == "in_progress"

    shown = agent("task", "show", task_id)
    assert "in_progress" in shown.stdout and "cli-bot" in shown.stdout
    beat = agent("heartbeat", task_id, "--claim", claim_id, "--lease", "120")
    assert "extended until" in beat.stdout
    stale = agent("heartbeat", task_id, "--claim", "clm_not-mine", expect=ExitCode.FAILED)
    assert "409" in stale.stderr

    again = agent("claim", "--stage", "dev", "--agent-id", "cli-bot", "--project", project, "--run", run["id"],
                  expect=ExitCode.NOTHING_TO_CLAIM)
    assert "nothing queued at stage dev" in again.stderr

    advanced = agent("advance", task_id, "--claim", claim_id, "--result", "pass", "--notes", "all green")
    assert "done" in advanced.stdout
    assert agent.json("task", "show", task_id)["status"] == "done"
    watched = baton("run", "watch", run["id"], "--interval", "0.2", "--timeout", "90")
    assert f"run {run['id']} succeeded" in watched.stdout
    actions = [json.loads(line)["action"] for line in baton("run", "events", run["id"], "--json").stdout.splitlines()]
    assert "task.claimed" in actions or any("claim" in a for a in actions)


def test_claim_with_an_admin_key_needs_a_project(baton):
    result = baton("claim", "--stage", "dev", "--agent-id", "x", expect=ExitCode.FAILED)
    assert "project_id" in result.stderr


# --------------------------------------------------------------------------- approvals


def test_approving_a_gate_that_is_not_pending_prints_the_409(baton, human, project, tmp_path):
    run = start_run(baton, project, tmp_path, "--title", "not at the gate")
    result = human("approve", run["id"], "--gate", "deploy", "--comment", "ship it", expect=ExitCode.FAILED)
    line = result.stderr.strip()
    assert line.startswith("baton: ") and "409" in line and len(line.splitlines()) == 1
    admin = baton("approve", run["id"], expect=ExitCode.AUTH)  # only a human decides
    assert "403" in admin.stderr
    baton("run", "kill", run["id"], "--yes")


# --------------------------------------------------------------------------- roles


def test_roles_list_show_set(baton, tmp_path):
    listed = baton("roles", "list")
    for role in ("dev", "qa", "security", "docs", "cicd"):
        assert role in listed.stdout
    before = baton.json("roles", "show", "qa")
    prompt = write(tmp_path / "prompt.md", "Test everything twice.")
    updated = baton.json("roles", "set", "qa", "--timeout", "120", "--prompt-file", prompt,
                         "--required-proof", "test_result", "--required-proof", "log")
    assert updated["version"] == before["version"] + 1
    assert updated["timeout_seconds"] == 120 and updated["prompt"] == "Test everything twice."
    assert updated["required_proofs"] == ["test_result", "log"]
    assert updated["heartbeat_seconds"] == before["heartbeat_seconds"]  # unchanged fields are kept
    role_file = write(tmp_path / "qa.yaml", "heartbeat_seconds: 30\nexecutor: external\n")
    from_file = baton.json("roles", "set", "qa", "--file", role_file)
    assert from_file["heartbeat_seconds"] == 30 and from_file["timeout_seconds"] == 120
    shown = baton("roles", "show", "qa")
    assert "120s" in shown.stdout and "Test everything twice." in shown.stdout
    assert len(baton.json("roles", "versions", "qa")) >= 3
    bad = baton("roles", "set", "qa", "--file", write(tmp_path / "bad.yaml", "owner: me\n"), expect=ExitCode.USAGE)
    assert "unknown field(s) owner" in bad.stderr


# --------------------------------------------------------------------------- keys


def test_keys_create_list_rotate_revoke(stack, baton, project):
    created = baton("keys", "create", "--name", "rotating", "--principal", "agent", "--project", project)
    key = next(word for word in created.stdout.split() if word.startswith("bt_"))
    assert "shown only once" in created.stderr
    listed = baton.json("keys", "list")
    old = next(k for k in listed if k["name"] == "rotating")
    assert "key" not in old and "rotating" in baton("keys", "list").stdout
    baton.as_key(key)("status")

    rotated = baton("keys", "rotate", old["id"])
    new_key = next(word for word in rotated.stdout.split() if word.startswith("bt_"))
    assert new_key != key and "Revoked the old key" in rotated.stdout
    refused = baton.as_key(key)("project", "list", expect=ExitCode.AUTH)
    assert "revoked" in refused.stderr
    baton.as_key(new_key)("status")
    new = next(k for k in baton.json("keys", "list") if k["name"] == "rotating")
    assert new["id"] != old["id"] and new["principal"] == "agent" and new["project_ids"] == [project]
    assert old["id"] not in [k["id"] for k in baton.json("keys", "list")]
    assert old["id"] in [k["id"] for k in baton.json("keys", "list", "--revoked")]

    baton("keys", "revoke", new["id"])
    baton.as_key(new_key)("project", "list", expect=ExitCode.AUTH)
    baton("keys", "rotate", new["id"], expect=ExitCode.FAILED)
    baton("keys", "rotate", "key_doesnotexist", expect=ExitCode.NOT_FOUND)
    needs_project = baton("keys", "create", "--name", "x", "--principal", "human", expect=ExitCode.USAGE)
    assert "--project" in needs_project.stderr


# --------------------------------------------------------------------------- handoffs and proofs


def test_handoff_write_and_show(baton, agent, project, tmp_path):
    run = start_run(baton, project, tmp_path, "--title", "handoffs", "--stages", "dev", tasks="- handoff task\n")
    claimed = claim_when_dispatched(agent, project, run["id"])
    task_id, held = claimed["task"]["id"], ("--claim", claimed["claim"]["claim_id"])
    # An agent's evidence counts only under its live claim (contract v1.1): without --claim, 409.
    agent("handoff", "write", task_id, "--from", "dev", "--to", "qa", "--summary", "s", expect=ExitCode.FAILED)
    written = agent(*held, "handoff", "write", task_id, "--from", "dev", "--to", "qa", "--summary", "login works",
                    "--work-done", "a1b2c3=OAuth callback", "--learning", "the IdP is slow", "--confidence", "high")
    assert "Wrote handoff" in written.stdout
    handoff_file = write(tmp_path / "handoff.yaml",
                         "from_role: dev\nto_role: qa\nsummary: second pass\n"
                         "decisions: [{choice: authlib, alternatives: [diy], reason: kept}]\n"
                         "open_questions:\n  - who owns the IdP?\n")
    second = agent.json(*held, "handoff", "write", task_id, "--file", handoff_file)
    assert second["summary"] == "second pass" and second["confidence"] == "medium"
    latest = agent("handoff", "show", "--task", task_id)
    assert "second pass" in latest.stdout and "authlib" in latest.stdout
    first = agent.json("handoff", "show", "--task", task_id, "--all")
    assert [h["summary"] for h in first] == ["second pass", "login works"]
    by_id = agent("handoff", "show", first[1]["id"])
    assert "a1b2c3" in by_id.stdout and "the IdP is slow" in by_id.stdout
    agent(*held, "handoff", "accept", second["id"])
    agent(*held, "handoff", "accept", second["id"], expect=ExitCode.FAILED)
    agent("handoff", "write", task_id, "--to", "qa", expect=ExitCode.USAGE)
    baton("run", "kill", run["id"], "--yes")


def test_proof_upload_list_get(baton, agent, project, tmp_path):
    run = start_run(baton, project, tmp_path, "--title", "proofs", "--stages", "dev", tasks="- proof task\n")
    claimed = claim_when_dispatched(agent, project, run["id"])
    task_id = claimed["task"]["id"]
    report = tmp_path / "junit report.xml"
    report.write_bytes(b"<testsuite tests='3' failures='0'/>\n" * 50)
    uploaded = agent("--claim", claimed["claim"]["claim_id"], "proof", "upload", task_id, str(report),
                     "--type", "test_result")
    assert "stored" in uploaded.stdout and f"tasks/{task_id}/" in uploaded.stdout
    proofs = agent.json("proof", "list", "--task", task_id)
    assert len(proofs) == 1 and proofs[0]["filename"] == "junit_report.xml" and proofs[0]["status"] == "stored"
    assert proofs[0]["id"] in agent("proof", "list", "--project", project, "--type", "test_result").stdout
    target = tmp_path / "copy.xml"
    got = agent("proof", "get", proofs[0]["id"], "-o", str(target))
    assert "sha256 verified" in got.stdout and target.read_bytes() == report.read_bytes()
    agent("proof", "get", proofs[0]["id"], "-o", str(target), expect=ExitCode.USAGE)  # no silent overwrite
    agent("proof", "list", expect=ExitCode.USAGE)
    baton("run", "kill", run["id"], "--yes")


# --------------------------------------------------------------------------- status


def test_status_reports_the_api_and_where_its_settings_came_from(baton, stack):
    shown = baton("status")
    assert stack.api_url in shown.stdout and "--api-url" in shown.stdout and "accepted" in shown.stdout
    assert BatonClient(stack.api_url, None).get("/status")["status"] == "ok"
