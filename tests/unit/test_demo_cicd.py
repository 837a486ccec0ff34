"""The demo's cicd agent for real, against local git repositories in tmp_path: a bare origin whose
main is the base, task branches that a release merges and pushes (its outputs.json names the base
and the release), then a rollback that puts main's tree back to the base with one new commit, or
refuses when main moved past the release. The agent runs as the runner runs it: a subprocess in a
working copy made by ``prepare_repository``, with the BATON_* environment and a scratch HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from chalicelib.agent.work import prepare_repository, task_branch

ROOT = Path(__file__).resolve().parents[2]
CICD = ROOT / "chalicelib" / "demo" / "agents" / "cicd.py"
RUN_ID = "run_cicd01"
REASON = "word_count miscounts: it breaks the search page"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def commit_file(repo: Path, name: str, text: str, message: str) -> None:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", message)


class Origin:
    """A bare repository whose main holds the base commit, and a clone to push to it as a person would."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.bare = tmp_path / "origin.git"
        seed = tmp_path / "seed"
        seed.mkdir()
        git(seed, "init", "-q", "-b", "main")
        commit_file(seed, "README.md", "textkit\n", "base")
        git(tmp_path, "clone", "-q", "--bare", str(seed), str(self.bare))
        self.person = tmp_path / "person"
        git(tmp_path, "clone", "-q", str(self.bare), str(self.person))
        self.base = self.rev("main")

    def rev(self, ref: str) -> str:
        return git(self.bare, "rev-parse", ref)

    def push_task_branch(self, task_id: str, name: str) -> None:
        git(self.person, "checkout", "-q", "-B", task_branch(RUN_ID, task_id), self.base)
        commit_file(self.person, f"textkit/{name}.py", f"def {name}():\n    return 1\n", f"add {name}")
        git(self.person, "push", "-q", "origin", task_branch(RUN_ID, task_id))

    def push_to_main(self, name: str) -> None:
        git(self.person, "fetch", "-q", "origin")
        git(self.person, "checkout", "-q", "-B", "main", "origin/main")
        commit_file(self.person, name, "later\n", f"add {name}")
        git(self.person, "push", "-q", "origin", "main")

    def files(self, ref: str = "main") -> list[str]:
        return sorted(git(self.bare, "ls-tree", "-r", "--name-only", ref).split())


class Job:
    """One cicd job: a fresh working copy of the task's branch, a proofs folder, the agent's result."""

    def __init__(self, origin: Origin, task_id: str):
        self.dir = origin.tmp / task_id
        self.repo, self.home, self.proofs = self.dir / "repo", self.dir / "home", self.dir / "proofs"
        for folder in (self.home, self.proofs):
            folder.mkdir(parents=True)
        prepare_repository(f"file://{origin.bare}", "main", task_branch(RUN_ID, task_id), self.repo, self.home)
        self.task_id = task_id
        self.result: Optional[subprocess.CompletedProcess] = None

    def run(self, source: str = "release", inputs: Optional[dict[str, Any]] = None,
            description: str = "") -> subprocess.CompletedProcess:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.home), "GIT_CONFIG_NOSYSTEM": "1",
               "BATON_TASK_ID": self.task_id, "BATON_RUN_ID": RUN_ID, "BATON_STAGE": "cicd",
               "BATON_TASK_TITLE": f"{source} task", "BATON_TASK_DESCRIPTION": description,
               "BATON_REPO_DIR": str(self.repo), "BATON_PROOFS_DIR": str(self.proofs), "BATON_PRIMARY_BRANCH": "main",
               "BATON_TASK_SOURCE": source, "BATON_INPUTS": json.dumps(inputs or {})}
        self.result = subprocess.run([sys.executable, str(CICD)], cwd=self.repo, env=env, capture_output=True,
                                     text=True, timeout=120)
        return self.result

    def proof(self, name: str) -> str:
        return (self.proofs / name).read_text()

    def outputs(self) -> Optional[dict[str, Any]]:
        path = self.proofs / "outputs.json"
        return json.loads(path.read_text()) if path.exists() else None

    def handoff(self) -> dict[str, Any]:
        return json.loads(self.proof("handoff.json"))


@pytest.fixture
def origin(tmp_path) -> Origin:
    return Origin(tmp_path)


def released(origin: Origin) -> dict[str, Any]:
    """Two task branches merged and pushed by a release; its outputs."""
    origin.push_task_branch("task_a", "truncate")
    origin.push_task_branch("task_b", "word_count")
    job = Job(origin, "task_release")
    done = job.run("release")
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = job.outputs()
    assert outputs is not None
    return outputs


def rollback_inputs(outputs: dict[str, Any]) -> dict[str, Any]:
    return {"release_task_id": "task_release", **outputs}


def description(release_commit: str) -> str:
    return f"Roll back the release of run {RUN_ID} ({release_commit}), asked by human:alice: {REASON}"


def test_a_release_records_its_base_and_its_release_commit(origin):
    outputs = released(origin)
    assert outputs == {"base_commit": origin.base, "release_commit": origin.rev("main")}
    assert origin.rev("main") != origin.base
    assert origin.files() == ["README.md", "textkit/truncate.py", "textkit/word_count.py"]


def test_a_rollback_restores_the_base_tree_with_one_new_commit(origin):
    outputs = released(origin)
    release = outputs["release_commit"]
    job = Job(origin, "task_rollback")
    done = job.run("rollback", rollback_inputs(outputs), description(release))
    assert done.returncode == 0, done.stdout + done.stderr
    head = origin.rev("main")
    assert origin.rev("main^{tree}") == origin.rev(f"{origin.base}^{{tree}}")      # the base's tree
    assert origin.rev("main^") == release                                           # one commit on the release
    assert origin.files() == ["README.md"]
    subject = f"Rollback of release {release} (run {RUN_ID}): {REASON}"
    assert git(origin.bare, "log", "-1", "--format=%s", "main") == subject
    assert job.outputs() == {"rollback_commit": head, "reverted_release_commit": release,
                             "restored_base_commit": origin.base}
    assert f"rolled back main: {head}" in job.proof("rollback.log")
    handoff = job.handoff()
    assert handoff["from_role"] == "cicd" and handoff["to_role"] == "director"
    assert handoff["summary"].startswith(f"Rolled back release {release[:12]} on main")


def test_a_rollback_run_again_reports_the_commit_it_pushed_before(origin):
    outputs = released(origin)
    first = Job(origin, "task_rollback")
    assert first.run("rollback", rollback_inputs(outputs), description(outputs["release_commit"])).returncode == 0
    rolled_back = origin.rev("main")
    again = Job(origin, "task_rollback_again")
    done = again.run("rollback", rollback_inputs(outputs), description(outputs["release_commit"]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert origin.rev("main") == rolled_back                                        # no second commit
    assert again.outputs() == first.outputs()
    assert "already rolled back" in again.proof("rollback.log")


def test_a_rollback_refuses_when_main_moved_past_the_release(origin):
    outputs = released(origin)
    origin.push_to_main("hotfix.txt")
    moved = origin.rev("main")
    job = Job(origin, "task_rollback")
    done = job.run("rollback", rollback_inputs(outputs), description(outputs["release_commit"]))
    assert done.returncode == 1
    assert origin.rev("main") == moved                                              # nothing pushed
    assert job.outputs() is None
    log = job.proof("rollback.log")
    assert "rollback refused: origin/main is at " + moved in log
    assert "1 commit(s) landed on main after the release" in log and "by hand" in log
    assert "rollback refused" in done.stdout
    handoff = job.handoff()
    assert "a person must revert it by hand" in handoff["summary"] and handoff["confidence"] == "high"


@pytest.mark.parametrize("kept, why", [(True, "main no longer contains the release"),
                                       (False, "is not a commit of origin")])
def test_a_rollback_refuses_when_main_no_longer_holds_the_release(origin, kept, why):
    outputs = released(origin)
    if kept:   # the release is still on another branch
        git(origin.bare, "update-ref", "refs/heads/kept", outputs["release_commit"])
    git(origin.bare, "update-ref", "refs/heads/main", origin.base)               # history rewritten
    job = Job(origin, "task_rollback")
    assert job.run("rollback", rollback_inputs(outputs), description(outputs["release_commit"])).returncode == 1
    assert origin.rev("main") == origin.base and job.outputs() is None
    assert why in job.proof("rollback.log")


@pytest.mark.parametrize("inputs", [
    {},
    {"release_task_id": "task_release"},
    {"release_commit": "--upload-pack=touch pwned", "base_commit": "abc1234"},
    {"release_commit": "HEAD", "base_commit": "HEAD~1"},
])
def test_a_rollback_without_commit_ids_in_its_inputs_changes_nothing(origin, inputs):
    released(origin)
    head = origin.rev("main")
    job = Job(origin, "task_rollback")
    assert job.run("rollback", inputs, description(head)).returncode == 1
    assert origin.rev("main") == head and job.outputs() is None
    assert "the task's inputs need release_commit and base_commit" in job.proof("rollback.log")
    assert not (job.repo / "pwned").exists()
