"""What the runner does around the agent's command: the working copy, the prompt, the proofs.

Pure helpers and thin git/HTTP calls, kept apart from the runner's control flow so each is
testable on its own.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import string
import subprocess  # nosec B404  # runs git and agent commands by design
from pathlib import Path
from typing import Any, Optional

from ..domain.roles import RoleSpec, digest_of
from ..domain.models import Role

SCREENSHOT_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
FILENAME_RE = re.compile(r"[^A-Za-z0-9._-]")


class ConfigDriftError(Exception):
    """The role config fetched for the job is not the one the run pinned."""


def verify_role(context: dict[str, Any], role_versions: list[dict[str, Any]], job: dict[str, Any]) -> dict[str, Any]:
    """Return the pinned role config after checking it has not drifted.

    The run pinned a digest per role when it started. The version the job names must exist,
    its content must hash to its own digest (nothing edited it in place), and that digest must be
    the run's pin (and the job's). Anything else is config drift: the runner refuses to work.
    """
    role = context["role"]["role"]
    pinned = (context["run"].get("pinned_roles") or {}).get(role)
    version = context["role"]["version"]
    config = next((v for v in role_versions if v["version"] == version), None)
    if config is None:
        raise ConfigDriftError(f"role {role} version {version} named by the job does not exist")
    spec = RoleSpec.model_validate({k: config[k] for k in RoleSpec.model_fields if k in config}, strict=False)
    actual = digest_of(Role(role), spec)
    if actual != config["digest"]:
        raise ConfigDriftError(f"role {role} version {version} was changed after it was published: its content "
                               f"hashes to {actual[:12]}, not to its digest {config['digest'][:12]}")
    if pinned and actual != pinned:
        raise ConfigDriftError(f"role {role} drifted: the run pinned {pinned[:12]}, the job got {actual[:12]}; "
                               "start a new run to use the new role version")
    if job.get("role_digest") and job["role_digest"] != actual:
        raise ConfigDriftError(f"role {role}: the job was dispatched with {job['role_digest'][:12]}, "
                               f"the config now hashes to {actual[:12]}")
    return config


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, values: dict[str, Any]) -> str:
    """Fill ``{name}`` placeholders; unknown ones stay as they are (a prompt may contain braces)."""
    return string.Formatter().vformat(template, (), _Blank(values))


def prompt_values(context: dict[str, Any], proofs_dir: Path) -> dict[str, Any]:
    task, run, project = context["task"], context["run"], context["project"]
    handoffs = context.get("handoffs") or []
    latest = handoffs[0] if handoffs else None
    if latest:
        handoff_text = (f"From {latest['from_role']} to {latest['to_role']} ({latest.get('confidence')}): "
                        f"{latest['summary']}\nNotes: {latest.get('notes_for_next', '')}\n"
                        f"Open questions: {'; '.join(latest.get('open_questions') or []) or 'none'}")
    else:
        handoff_text = "(none: you are the first agent on this task)"
    proofs = context.get("proofs") or []
    proof_lines = [f"- {p['type']} {p['filename']} (stage {p['stage']}-{p['iteration']})" for p in proofs]
    reports = [p for p in proofs if p["type"] == "report"]
    return {"role": context["role"]["role"] if context.get("role") else "", "project_name": project["name"],
            "repository_url": project["repository_url"], "branch": project.get("primary_branch", "main"),
            "run_title": run["title"], "task_id": task["id"], "task_title": task["title"],
            "task_description": task.get("description", ""), "stage": task["stage"], "iteration": task["iteration"],
            "latest_handoff": handoff_text, "proofs": "\n".join(proof_lines) or "(none yet)",
            "findings": "\n".join(f"- report {p['filename']}" for p in reports) or "(none yet)",
            "proofs_dir": str(proofs_dir)}


def task_branch(run_id: str, task_id: str) -> str:
    return f"baton/{run_id}/{task_id}"


def git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=300)  # nosec B603 B607  # git with an argv list, no shell


def prepare_repository(url: str, primary: str, branch: str, target: Path) -> str:
    """Clone ``url`` into ``target`` on the task's branch (created from ``primary`` the first time).
    Returns a line saying what was checked out."""
    cloned = subprocess.run(["git", "clone", "--quiet", "--no-tags", url, str(target)], capture_output=True,  # nosec B603 B607  # git with an argv list, no shell
                            text=True, timeout=600)
    if cloned.returncode:
        raise RuntimeError(f"git clone {url} failed: {cloned.stderr.strip()[:500]}")
    git(["config", "user.email", "agent@baton.local"], target)
    git(["config", "user.name", "Baton agent"], target)
    if git(["rev-parse", "--verify", "--quiet", f"origin/{branch}"], target).returncode == 0:
        git(["checkout", "--quiet", "-B", branch, f"origin/{branch}"], target)
        return f"checked out {branch} (the task's branch)"
    start = f"origin/{primary}" if git(["rev-parse", "--verify", "--quiet", f"origin/{primary}"],
                                       target).returncode == 0 else "HEAD"
    git(["checkout", "--quiet", "-B", branch, start], target)
    return f"created {branch} from {primary}"


def publish_changes(repo: Path, branch: str, message: str) -> str:
    """Commit what the agent changed on the task branch and push it; a line saying what happened."""
    current = git(["rev-parse", "--abbrev-ref", "HEAD"], repo).stdout.strip()
    if current != branch:
        return f"left {current} as the agent set it (not the task branch)"
    git(["add", "-A"], repo)
    if git(["diff", "--cached", "--quiet"], repo).returncode != 0:
        git(["commit", "--quiet", "-m", message], repo)
    pushed = git(["push", "--quiet", "origin", f"{branch}:{branch}"], repo)
    if pushed.returncode:
        return f"could not push {branch}: {pushed.stderr.strip()[:300]}"
    return f"pushed {branch}"


def classify(path: Path) -> Optional[tuple[str, Optional[str]]]:
    """(proof type, findings format or None) for a file the agent left, or None to skip it."""
    name, suffix = path.name.lower(), path.suffix.lower()
    if name == "handoff.json":
        return None
    if suffix in SCREENSHOT_SUFFIXES:
        return "screenshot", None
    if suffix in (".diff", ".patch"):
        return "code_diff", None
    if suffix == ".xml":
        head = path.read_bytes()[:4096]
        return ("test_result", None) if b"<testsuite" in head else ("other", None)
    if suffix in (".sarif", ".json"):
        try:
            document = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            return "other", None
        if isinstance(document, dict):
            if "runs" in document and ("version" in document or "$schema" in document):
                return "report", "sarif"
            if "results" in document and "metrics" in document:
                return "report", "bandit"
            if isinstance(document.get("findings"), list):
                return "report", "security_report"
            if isinstance(document.get("bugs"), list):
                return "report", "bugs"
        return "other", None
    if suffix in (".log", ".txt", ".out"):
        return "log", None
    return "other", None


def proof_filename(name: str) -> str:
    cleaned = FILENAME_RE.sub("_", name)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip(".") or "proof"
    return cleaned[-128:]


def describe_file(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix.lower() in (".sarif", ".json"):
        content_type = "application/json"
    elif path.suffix.lower() in (".log", ".txt", ".diff", ".patch", ".out"):
        content_type = "text/plain"
    return {"filename": proof_filename(path.name), "content_type": content_type, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "data": data}
