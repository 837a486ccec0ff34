"""End to end on the local stack: an agent that pries everywhere it can finds no Baton key.

The dev role's container command is ``tests/agents/prying.sh``: it dumps its environment, every
readable ``/proc/*/environ`` and ``/proc/*/cmdline``, installs git hooks in its working copy that
record the environment they run with (and points core.hooksPath/fsmonitor at its own commands
for the runner's commit), and searches its working copy, HOME, TMPDIR, work dir and every
directory on PYTHONPATH/sys.path for ``b[tl]_[A-Za-z0-9_-]{20,}``. It writes what it found to a
proof, which this test downloads through the API.

"Found no key": no string it found is a key, job token or launch code this stack ever issued (the
table is looked up by the string's sha256, as the API does); in the places only the runner could
have leaked into (its own environment, what its hooks saw, its working copy, HOME, TMPDIR, work
dir) it found nothing token-shaped at all but its own canary. The canary (planted by the agent in
a file of its HOME and in a process environment) shows the search would have found a key.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chalicelib.agent.client import ApiError, BatonClient
from chalicelib.agent.transfer import download
from chalicelib.cli.client import CliClient
from chalicelib.local.stack import LocalStack
from chalicelib.services.api_keys import hash_key
from tests.support.agents import bare_repository
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
PRYING = ROOT / "tests" / "agents" / "prying.sh"
TOKEN_RE = re.compile(r"b[tl]_[A-Za-z0-9_-]{20,}")
STRICT_SECTIONS = ("env", "hooks", "workcopy", "home", "tmp", "workdir")


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    return bare_repository(tmp_path_factory.mktemp("repo"), "secrets")


@pytest.fixture(scope="module")
def project(stack, repository) -> str:
    CliClient(stack.api_url, stack.admin_key).post("/projects", {
        "id": "secrets", "name": "Secrets", "repository_url": f"file://{repository}"})
    return "secrets"


def issued(stack: LocalStack, candidate: str) -> bool:
    """Whether ``candidate`` is a credential this stack issued (live or not)."""
    return stack.services.repos.credentials.get(hash_key(candidate)) is not None


def report_lines(text: str) -> list[tuple[str, str, str]]:
    return [tuple(line.split("\t", 2)) for line in text.splitlines() if line.count("\t") >= 2]  # type: ignore[misc]


def test_a_prying_agent_finds_no_key(stack, repository, project, tmp_path):
    admin = CliClient(stack.api_url, stack.admin_key)
    out = tmp_path / "out"
    out.mkdir()
    admin.put("/roles/dev", {"prompt": "Pry, {task_title}. Braces stay: {\"a\": 1} {nothing}",
                             "executor": "container", "command": f"sh {PRYING} {out} {{python}}",
                             "required_proofs": [], "timeout_seconds": 300, "heartbeat_seconds": 5})
    run = admin.post("/projects/secrets/runs", {"title": "pry", "deploy_gate": False, "stages": ["dev"],
                                                 "tasks": [{"title": "pry everywhere"}]})
    wait_for(lambda: admin.get(f"/runs/{run['id']}")["status"] in ("succeeded", "failed"), "the run to end", 300)
    (task,) = admin.get(f"/runs/{run['id']}/tasks")["items"]
    assert task["status"] == "done", task

    # The report, as the agent uploaded it.
    proofs = admin.get(f"/tasks/{task['id']}/proofs")["items"]
    (report_proof,) = [p for p in proofs if p["filename"] == "prying-report.txt"]
    report = download(admin.location(f"/proofs/{report_proof['id']}/download")).decode()
    assert report == (out / "prying-report.txt").read_text()
    lines = report_lines(report)
    stats = {(where, found) for section, where, found in lines if section == "stat"}
    (canary,) = [found for section, _, found in lines if section == "canary"]

    # The search worked: it read /proc, ran hooks, searched sys.path, and found its canaries.
    assert int(next(found for where, found in stats if where == "proc-files-read")) > 10
    assert int(next(found for where, found in stats if where == "hook-records")) > 0
    assert any(where == "searched" and found.startswith("path:") and "site-packages" in found
               for where, found in stats)
    assert ("proc", canary) in {(s, f) for s, _, f in lines}
    assert ("home", canary) in {(s, f) for s, _, f in lines}
    assert not issued(stack, canary) and issued(stack, stack.admin_key)   # the lookup itself works

    # Nothing it found is a credential of this stack ...
    found = {f for s, _, f in lines if s not in ("stat", "canary")}
    assert [f for f in found if issued(stack, f)] == []
    # ... and where only the runner could have leaked, nothing token-shaped but its canary.
    strict = [(s, w, f) for s, w, f in lines if s in STRICT_SECTIONS and f != canary]
    assert strict == []

    # Its hooks ran for its own commit, never for the runner's (every record says AGENT_SELF=1),
    # and saw no credential.
    records = sorted(out.glob("hook-*"))
    assert any(r.name.startswith("hook-pre-commit.") for r in records)
    assert [r.name for r in records if "AGENT_SELF=1" not in r.read_text()] == []
    assert [r.name for r in records if TOKEN_RE.search(r.read_text())] == []
    # The runner still committed what the agent left, on the task branch, past those hooks.
    branch = f"baton/{task['run_id']}/{task['id']}"
    tree = subprocess.run(["git", "ls-tree", "-r", "--name-only", branch], cwd=repository, capture_output=True,
                          text=True, check=True).stdout.split()
    assert {"pried.txt", "for-the-runner.txt"} <= set(tree)

    # What the agent's environment held: job descriptors, a scratch HOME; no Baton wiring.
    env = dict(line.split("=", 1) for line in (out / "agent-env.txt").read_text().splitlines() if "=" in line)
    assert env["BATON_TASK_ID"] == task["id"] and env["HOME"].startswith(env["BATON_WORKDIR"])
    assert not [n for n in env if n.startswith(("AWS_", "MOTO_", "PYTHON")) or n in (
        "BATON_API_KEY", "BATON_LAUNCH_CODE", "BATON_API_URL", "BATON_JOB", "BATON_RUNNER_PID")]
    # What it was lent: its task's state through the runner's proxy, whose token the API does not know.
    assert env["BATON_STATE_URL"].startswith("http://127.0.0.1:") and env["BATON_STATE_TOKEN"].startswith("bs_")
    assert not issued(stack, env["BATON_STATE_TOKEN"])
    with pytest.raises(ApiError) as refused:
        BatonClient(stack.api_url, env["BATON_STATE_TOKEN"]).get(f"/tasks/{task['id']}/state")
    assert refused.value.status == 401

    # The runner deleted the job's work dir; its log and the run's audit events hold no credential.
    workdir = next(found for where, found in stats if where == "workdir")
    assert not Path(workdir).exists()
    logs = "".join(p.read_text(errors="replace") for p in (stack.workdir / "jobs").glob("*.log"))
    assert f"advanced task {task['id']}: pass" in logs   # the runner's own log, read whole
    assert TOKEN_RE.findall(logs) == []
    events: list[dict[str, Any]] = admin.get(f"/runs/{run['id']}/events?limit=200")["items"]
    assert TOKEN_RE.findall(json.dumps(events)) == []


def test_baton_agent_run_works_a_task_with_the_callers_own_key(stack, project, tmp_path):
    """``baton agent run --task`` (the runner by hand, with the caller's own agent key): it claims,
    works, uploads its evidence under its claim (``Baton-Claim``), advances, and removes the job's
    directory from the ``--workdir`` it was given."""
    from click.testing import CliRunner

    from chalicelib.cli.main import cli

    admin = CliClient(stack.api_url, stack.admin_key)
    scripted = ROOT / "tests" / "agents" / "scripted.py"
    admin.put("/roles/dev", {"prompt": "by hand: {task_title}", "executor": "external",
                             "command": f"{{python}} {scripted}", "required_proofs": ["log"],
                             "timeout_seconds": 120, "heartbeat_seconds": 30})
    key = admin.post("/keys", {"name": "by-hand", "principal": "agent", "project_ids": ["secrets"]})["key"]
    run = admin.post("/projects/secrets/runs", {"title": "by hand", "deploy_gate": False, "stages": ["dev"],
                                                 "tasks": [{"title": "steady by hand"}]})
    (task,) = admin.get(f"/runs/{run['id']}/tasks")["items"]
    wait_for(lambda: admin.get(f"/tasks/{task['id']}")["status"] == "queued"
             and admin.get(f"/tasks/{task['id']}/context")["attempts"], "the stage job to wait for its agent", 60)
    workdir = tmp_path / "scratch"
    result = CliRunner().invoke(cli, ["--api-url", stack.api_url, "--api-key", key, "agent", "run",
                                      "--task", task["id"], "--workdir", str(workdir)])
    assert result.exit_code == 0, result.output
    assert f"advanced task {task['id']}: pass" in result.output
    after = wait_for(lambda: (lambda t: t if t["status"] == "done" else None)(admin.get(f"/tasks/{task['id']}")),
                     "the task to be done", 60)
    assert after["stage"] == "complete"
    proofs = admin.get(f"/tasks/{task['id']}/proofs")["items"]
    assert [p["type"] for p in proofs] == ["log"]       # the agent's output, kept under the claim
    assert workdir.is_dir() and list(workdir.iterdir()) == []
