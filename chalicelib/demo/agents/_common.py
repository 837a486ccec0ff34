"""Shared by the demo's shell agents: where things are, and how to leave a handoff."""

import json
import os
import subprocess  # nosec B404  # the demo agents run git and pytest
from pathlib import Path

WORK = Path(os.environ.get("BATON_REPO_DIR") or os.environ.get("BATON_WORKDIR", "."))
PROOFS = Path(os.environ.get("BATON_PROOFS_DIR", "proofs"))
TITLE = os.environ.get("BATON_TASK_TITLE", "")
DESCRIPTION = os.environ.get("BATON_TASK_DESCRIPTION", "")
ITERATION = int(os.environ.get("BATON_ITERATION", "1"))
STAGE = os.environ.get("BATON_STAGE", "")
SOURCE = os.environ.get("BATON_TASK_SOURCE", "")


def feature() -> str:
    """The demo task names its feature in the description: ``feature: <name>``."""
    for line in DESCRIPTION.splitlines():
        if line.startswith("feature:"):
            return line.split(":", 1)[1].strip()
    return ""


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=WORK, capture_output=True, text=True)  # nosec B603  # argv list, no shell


def handoff(from_role: str, to_role: str, summary: str, *, work_done=(), decisions=(), notes="", learnings=(),
            questions=(), confidence="high") -> None:
    (PROOFS / "handoff.json").write_text(json.dumps({
        "from_role": from_role, "to_role": to_role, "summary": summary,
        "work_done": [{"ref": ref, "description": text} for ref, text in work_done],
        "decisions": [{"choice": c, "alternatives": list(a), "reason": r} for c, a, r in decisions],
        "notes_for_next": notes, "learnings": list(learnings), "open_questions": list(questions),
        "resume_prompt": f"Continue {TITLE!r} from the {to_role} stage.", "confidence": confidence,
    }, indent=2))


def inputs() -> dict:
    """What the task was handed (``BATON_INPUTS``, else the ``inputs.json`` the runner wrote); ``{}``
    when there is nothing usable."""
    text = os.environ.get("BATON_INPUTS", "")
    if not text and os.environ.get("BATON_INPUTS_FILE"):
        try:
            text = Path(os.environ["BATON_INPUTS_FILE"]).read_text()
        except OSError:
            text = ""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def outputs(**values) -> None:
    """Leave values for later tasks: the runner sends ``outputs.json`` with the advance."""
    (PROOFS / "outputs.json").write_text(json.dumps(values, indent=2))
