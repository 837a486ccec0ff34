"""``baton demo``: one run of three tasks worked by shell agents, on the local stack.

It ships a small Python repository (``sample/``) as a local git repository, points the roles at
the demo agents (``agents/``: dev edits code, qa runs pytest with a JUnit XML proof, security runs
bandit and reports SARIF findings, docs writes the docs, cicd merges and pushes the release),
starts the run, shows its progress, approves the deploy gate as a human, and prints a summary.
One task's first implementation has a bug that QA catches: the run shows a loop-back.
"""

from __future__ import annotations

import shutil
import subprocess  # nosec B404  # runs git and agent commands by design
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ..agent.client import ApiError, BatonClient

HERE = Path(__file__).resolve().parent
PROJECT_ID = "demo-textkit"
TASKS = [
    {"title": "Add truncate(text, width)", "description": "feature: truncate\nCut long text with an ellipsis.",
     "priority": 7},
    {"title": "Add word_count(text)", "description": "feature: word_count\nCount the words of a text.",
     "priority": 5},
    {"title": "Add title_case(text)", "description": "feature: title_case\nCapitalise every word.", "priority": 5},
]
ROLE_SETUP = {
    "dev": ("dev.py", ["code_diff"]),
    "qa": ("qa.py", ["test_result"]),
    "security": ("security.py", ["report"]),
    "docs": ("docs.py", []),
    "cicd": ("cicd.py", ["log"]),
}


def make_repository(workdir: Path) -> str:
    """A fresh bare repository holding the sample project; returns its file:// URL."""
    root = workdir / "demo" / time.strftime("%Y%m%d-%H%M%S")
    work, bare = root / "work", root / "textkit.git"
    shutil.copytree(HERE / "sample", work)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.email=demo@baton.local", "-c", "user.name=Baton demo", "commit", "-q", "-m",
                  "textkit: slugify"]):
        subprocess.run(["git", *args], cwd=work, check=True, capture_output=True)  # nosec B603 B607  # git with an argv list
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, capture_output=True)  # nosec B603 B607  # git with an argv list
    return f"file://{bare}"


def configure_roles(client: BatonClient) -> None:
    for role, (script, proofs) in ROLE_SETUP.items():
        current = client.get(f"/roles/{role}")
        client.put(f"/roles/{role}", {
            "prompt": current["prompt"], "executor": "container",
            "command": f"{sys.executable} {HERE / 'agents' / script}", "image": None,
            "required_proofs": proofs, "timeout_seconds": 300, "heartbeat_seconds": 10})


def ensure_project(client: BatonClient, repository: str) -> None:
    try:
        client.post("/projects", {"id": PROJECT_ID, "name": "textkit (Baton demo)", "repository_url": repository})
    except ApiError as error:
        if error.status != 409:
            raise
        client.patch(f"/projects/{PROJECT_ID}", {"repository_url": repository})


def run_demo(client: BatonClient, workdir: Path, say: Callable[[str], None],
             watch: Callable[[str, bool], dict[str, Any]], timeout: float = 110) -> dict[str, Any]:
    """Drive the demo; returns the summary. ``watch(run_id, until_gate)`` shows progress until the
    run reaches the gate (or ends) and returns the run."""
    began = time.monotonic()
    repository = make_repository(workdir)
    say(f"sample repository: {repository}")
    ensure_project(client, repository)
    configure_roles(client)
    say("roles point at the demo's shell agents (dev, qa, security, docs, cicd)")
    run = client.post(f"/projects/{PROJECT_ID}/runs", {"title": "textkit: three small features",
                                                       "tasks": TASKS, "parallelism": 3, "max_iterations": 3})
    say(f"run {run['id']} started with {len(TASKS)} tasks")
    run = watch(run["id"], True)
    if run["status"] != "awaiting_approval":
        raise RuntimeError(f"the run ended {run['status']} before its deploy gate")
    reviewer = client.post("/keys", {"name": "demo reviewer", "principal": "human", "project_ids": [PROJECT_ID]})
    human = BatonClient(client.base_url, reviewer["key"])
    human.post(f"/runs/{run['id']}/approvals/deploy", {"decision": "approve", "comment": "demo: looks good"})
    client.delete(f"/keys/{reviewer['id']}")
    say("deploy gate approved by a human key; the release task merges the task branches")
    run = watch(run["id"], False)
    return summary(client, run, time.monotonic() - began)


def summary(client: BatonClient, run: dict[str, Any], seconds: float) -> dict[str, Any]:
    tasks = client.get(f"/runs/{run['id']}/tasks?limit=200")["items"]
    events = client.get(f"/runs/{run['id']}/events?limit=200")["items"]
    proofs = client.get(f"/projects/{run['project_id']}/proofs?run_id={run['id']}&limit=200")["items"]
    return {"run": run, "tasks": tasks, "proofs": proofs, "seconds": round(seconds, 1),
            "loop_backs": sum(1 for e in events if e["action"] == "task.looped_back"),
            "events": len(events)}
