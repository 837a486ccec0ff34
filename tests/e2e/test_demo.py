"""`baton demo` end to end on the local stack: three tasks, shell agents, one QA loop-back, the
deploy gate approved from the CLI, the release merged into the sample repository's main branch,
then rolled back by a person (the run ends `rolled_back`, main holds the base commit's tree)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from click.testing import CliRunner

from chalicelib.agent.client import BatonClient
from chalicelib.cli.main import cli
from tests.support.waiting import wait_for


def test_the_demo_succeeds_with_a_loop_back_and_a_merged_release_that_rolls_back(stack, tmp_path):
    result = CliRunner().invoke(cli, ["--api-url", stack.api_url, "--api-key", stack.admin_key, "demo",
                                      "--workdir", str(tmp_path), "--timeout", "110"])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output
    client = BatonClient(stack.api_url, stack.admin_key)
    run = client.get("/projects/demo-textkit/runs")["items"][0]
    assert run["status"] == "succeeded"
    tasks = client.get(f"/runs/{run['id']}/tasks")["items"]
    assert max(t["iteration"] for t in tasks) == 2           # word_count went back to dev once
    events = [e["action"] for e in client.get(f"/runs/{run['id']}/events?limit=200")["items"]]
    assert events.count("task.looped_back") == 1
    assert "approval.requested" in events
    proofs = client.get(f"/projects/demo-textkit/proofs?run_id={run['id']}&limit=200")["items"]
    assert {"code_diff", "test_result", "report", "log"} <= {p["type"] for p in proofs}
    assert all(p["s3_key"].startswith(f"projects/demo-textkit/runs/{run['id']}/tasks/") for p in proofs)
    # The release task merged every task branch into main of the sample repository.
    bare = next(Path(tmp_path).glob("demo/*/textkit.git"))
    files = subprocess.run(["git", "ls-tree", "-r", "--name-only", "main"], cwd=bare, capture_output=True,
                           text=True, check=True).stdout.split()
    for feature in ("truncate", "word_count", "title_case"):
        assert f"textkit/{feature}.py" in files and f"docs/{feature}.md" in files
    # A person rolls the release back: the cicd agent restores the base commit's tree on main.
    release = next(t for t in tasks if t["source"] == "release")
    base, released = release["outputs"]["base_commit"], release["outputs"]["release_commit"]
    assert git(bare, "rev-parse", "main") == released
    person = client.post("/keys", {"name": "e2e rollback", "principal": "human", "project_ids": ["demo-textkit"]})
    rollback = BatonClient(stack.api_url, person["key"]).post(f"/runs/{run['id']}/rollback",
                                                              {"reason": "word_count broke search"})
    assert rollback["source"] == "rollback" and rollback["inputs"]["base_commit"] == base
    wait_for(lambda: client.get(f"/runs/{run['id']}")["status"] == "rolled_back", "the rollback", 60)
    assert git(bare, "rev-parse", "main^{tree}") == git(bare, "rev-parse", f"{base}^{{tree}}")
    assert git(bare, "rev-parse", "main^") == released          # a new commit on top, history kept
    assert "Rollback of release" in git(bare, "log", "-1", "--format=%s", "main")


def git(bare: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=bare, capture_output=True, text=True, check=True).stdout.strip()
