"""What end-to-end runs work with: the scripted agent's command (``tests/agents/scripted.py``: what it
does depends on words in the task title) and a bare git repository the agents clone and push task
branches to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

AGENTS = Path(__file__).resolve().parents[1] / "agents"
SCRIPTED_AGENT = f"{sys.executable} {AGENTS / 'scripted.py'}"


def scripted_role(role: str) -> dict:
    """A role config whose container jobs run the scripted agent, heartbeating every 3 s."""
    return {"prompt": f"scripted {role}", "executor": "container", "command": SCRIPTED_AGENT, "required_proofs": [],
            "timeout_seconds": 120, "heartbeat_seconds": 3}


def bare_repository(root: Path, name: str) -> Path:
    """``root/<name>.git``: a bare repository whose main branch holds one commit (a README)."""
    work, bare = root / "work", root / f"{name}.git"
    work.mkdir()
    (work / "README.md").write_text(f"{name}\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "start"]):
        subprocess.run(["git", *args], cwd=work, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare
