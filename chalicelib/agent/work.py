"""What the runner does around the agent's command: the working copy, the prompt, the proofs.

Pure helpers and thin git/HTTP calls, kept apart from the runner's control flow so each is
testable on its own.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
import shutil
import stat
import subprocess  # nosec B404  # runs git and agent commands by design
from pathlib import Path
from typing import Any, Mapping, Optional

from ..domain.roles import RoleSpec, digest_of
from ..domain.enums import Role

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


PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill the ``{name}`` placeholders named in ``values``, in one pass. Every other brace stays
    as written (``{"a": 1}``, ``{unknown}``, ``{0}``, ``{a.b}``, a lone ``{``, ``{{``): a prompt may
    hold JSON or code, and a value that itself contains ``{name}`` is not filled again."""
    def fill(match: re.Match) -> str:
        name = match.group(1)
        return str(values[name]) if name in values else match.group(0)

    return PLACEHOLDER_RE.sub(fill, template)


# ---- the agent's environment: an allow-list, never the runner's own environment

AGENT_BASE_NAMES = ("PATH", "LANG", "TZ", "TERM")
# Job descriptors the runner sets for the agent (nothing secret among them).
AGENT_DESCRIPTORS = ("BATON_TASK_ID", "BATON_RUN_ID", "BATON_PROJECT_ID", "BATON_STAGE", "BATON_ITERATION",
                     "BATON_ATTEMPT", "BATON_TASK_TITLE", "BATON_TASK_DESCRIPTION", "BATON_WORKDIR", "BATON_REPO_DIR",
                     "BATON_PROOFS_DIR", "BATON_PROMPT_FILE", "BATON_PRIMARY_BRANCH", "BATON_TASK_SOURCE",
                     "BATON_INPUTS", "BATON_INPUTS_FILE", "BATON_SESSION_ID")
# Names BATON_AGENT_ENV can never pass on: cloud credentials, the local stack's wiring, Baton's own.
FORBIDDEN_PREFIXES = ("AWS_", "MOTO_", "BATON_")
FORBIDDEN_NAMES = frozenset({"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "LD_PRELOAD", "LD_LIBRARY_PATH"})
SECRET_PREFIXES = ("bt_", "bl_")   # Baton's keys/job tokens and launch codes
SECRET_RE = re.compile(r"(?<![A-Za-z0-9_-])b[tl]_[A-Za-z0-9_-]{20,}")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def looks_secret(value: str) -> bool:
    """A value that is, or carries, one of Baton's credentials."""
    return value.startswith(SECRET_PREFIXES) or SECRET_RE.search(value) is not None


def passable_name(name: str) -> bool:
    """Whether BATON_AGENT_ENV may name ``name`` (and a launcher may pass it through)."""
    upper = name.upper()
    return bool(NAME_RE.fullmatch(name)) and not upper.startswith(FORBIDDEN_PREFIXES) and upper not in FORBIDDEN_NAMES


def agent_env_names(source: Mapping[str, str]) -> list[str]:
    """The extra variables the operator grants the agent (``BATON_AGENT_ENV=ANTHROPIC_API_KEY,...``),
    minus the ones no agent may have."""
    names = [n.strip() for n in source.get("BATON_AGENT_ENV", "").split(",")]
    return [n for n in dict.fromkeys(names) if n and passable_name(n)]


def agent_environment(descriptors: Mapping[str, str], home: Path, tmpdir: Path,
                      source: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The agent command's whole environment, built from nothing: PATH, LANG/LC_*, TZ and TERM from
    ``source`` (the runner's environment), a scratch HOME and TMPDIR inside the job's work dir, the
    job descriptors, and the variables BATON_AGENT_ENV names. No value that is or carries a Baton
    credential gets in, whatever its name."""
    source = os.environ if source is None else source
    env = {n: v for n, v in source.items() if n in AGENT_BASE_NAMES or n.startswith("LC_")}
    env.update({n: source[n] for n in agent_env_names(source) if n in source})
    env.update({n: str(v) for n, v in descriptors.items() if n in AGENT_DESCRIPTORS})
    env.update({"HOME": str(home), "TMPDIR": str(tmpdir)})
    return {n: v for n, v in env.items() if not looks_secret(v)}


# ---- git, with a scrubbed environment and none of the working copy's executable configuration

# The agent owns the working copy, .git included: the runner's git must not run anything the agent
# wrote there (hooks, an fsmonitor command) with the runner's privileges.
GIT_SAFETY = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")


def git_environment(home: Path, source: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment of every git the runner starts: nothing of the runner's own (no credentials,
    no GIT_* from the caller), no system or global config."""
    source = os.environ if source is None else source
    env = {"PATH": source.get("PATH", os.defpath), "HOME": str(home), "GIT_TERMINAL_PROMPT": "0",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    if source.get("LANG"):
        env["LANG"] = source["LANG"]
    return env


def redact_url(text: str) -> str:
    """``scheme://user:secret@host`` → ``scheme://***@host`` in messages."""
    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text)


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
            "proofs_dir": str(proofs_dir), "task_source": task.get("source") or "",
            "inputs": json.dumps(task.get("inputs") or {}, sort_keys=True)}


def director_notes_text(context: dict[str, Any]) -> str:
    """The director's notes on the task, one line each ("" when there are none)."""
    notes = context.get("director_notes") or []
    return "\n".join(f"- [{n.get('rule')}, {n.get('stage')} iteration {n.get('iteration')}] {n.get('text')}"
                     for n in notes)


def prompt_text(template: str, context: dict[str, Any], proofs_dir: Path) -> str:
    """The role's prompt for this job: the template filled in, and the director's notes after it
    (unless the template places them itself with ``{director_notes}``)."""
    values = prompt_values(context, proofs_dir)
    notes = director_notes_text(context)
    values["director_notes"] = notes or "(none)"
    text = render(template, values)
    if notes and "{director_notes}" not in template:
        text += f"\n\nNotes from Baton's director (it watches every task of the run):\n{notes}\n"
    return text


def failure_report(proofs_dir: Path, output: Path) -> dict[str, Any]:
    """What a failed job failed on, for the advance: the failing tests of the JUnit files in the
    proofs folder and the error line of the agent's output (the director compares them across
    iterations; they decide nothing)."""
    from ..domain.director.fingerprints import error_line, failing_tests_in_junit

    tests: list[str] = []
    for path in sorted(proofs_dir.rglob("*.xml")):
        if path.is_file() and not path.is_symlink() and classify(path) == ("test_result", None):
            tests += failing_tests_in_junit(path.read_text(errors="replace"))
    tail = output.read_text(errors="replace")[-20_000:] if output.exists() else ""
    return {"failing_tests": [t[:500] for t in dict.fromkeys(tests)][:200], "error": error_line(tail)[:2000]}


def task_branch(run_id: str, task_id: str) -> str:
    return f"baton/{run_id}/{task_id}"


def git(args: list[str], cwd: Path, home: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *GIT_SAFETY, *args], cwd=cwd, env=git_environment(home),  # nosec B603 B607  # git with an argv list, no shell
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def prepare_repository(url: str, primary: str, branch: str, target: Path, home: Path) -> str:
    """Clone ``url`` into ``target`` on the task's branch (created from ``primary`` the first time).
    Returns a line saying what was checked out."""
    cloned = git(["clone", "--quiet", "--no-tags", "--", url, str(target)], target.parent, home, timeout=600)
    if cloned.returncode:
        raise RuntimeError(redact_url(f"git clone {url} failed: {cloned.stderr.strip()[:500]}"))
    git(["config", "user.email", "agent@baton.local"], target, home)
    git(["config", "user.name", "Baton agent"], target, home)
    if git(["rev-parse", "--verify", "--quiet", f"origin/{branch}"], target, home).returncode == 0:
        git(["checkout", "--quiet", "-B", branch, f"origin/{branch}"], target, home)
        return f"checked out {branch} (the task's branch)"
    start = f"origin/{primary}" if git(["rev-parse", "--verify", "--quiet", f"origin/{primary}"],
                                       target, home).returncode == 0 else "HEAD"
    git(["checkout", "--quiet", "-B", branch, start], target, home)
    return f"created {branch} from {primary}"


def git_config_of(repo: Path) -> Optional[bytes]:
    """The working copy's ``.git/config`` as the runner left it (to put back before publishing)."""
    try:
        return (repo / ".git" / "config").read_bytes()
    except OSError:
        return None


def restore_git_config(repo: Path, config: bytes) -> bool:
    """Put the runner's ``.git/config`` back (the agent may have added hooks paths, fsmonitor or
    filter commands, includes, another remote). False when ``.git`` is no longer a plain directory."""
    git_dir = repo / ".git"
    if git_dir.is_symlink() or not git_dir.is_dir():
        return False
    path = git_dir / "config"
    if path.is_symlink() or path.exists():
        path.unlink()
    path.write_bytes(config)
    return True


def publish_changes(repo: Path, branch: str, message: str, home: Path, config: Optional[bytes] = None) -> str:
    """Commit what the agent changed on the task branch and push it; a line saying what happened.
    The agent's hooks and ``.git/config`` changes are not honoured: ``config`` (the runner's own,
    from :func:`git_config_of`) is put back first, and hooks are off for every runner git call."""
    if config is not None and not restore_git_config(repo, config):
        return "not published: the agent replaced the working copy's .git"
    current = git(["rev-parse", "--abbrev-ref", "HEAD"], repo, home).stdout.strip()
    if current != branch:
        return f"left {current} as the agent set it (not the task branch)"
    git(["add", "-A"], repo, home)
    if git(["diff", "--cached", "--quiet"], repo, home).returncode != 0:
        committed = git(["commit", "--quiet", "--no-verify", "-m", message], repo, home)
        if committed.returncode:
            return f"could not commit on {branch}: {committed.stderr.strip()[:300]}"
    pushed = git(["push", "--quiet", "--no-verify", "origin", f"{branch}:{branch}"], repo, home)
    if pushed.returncode:
        return redact_url(f"could not push {branch}: {pushed.stderr.strip()[:300]}")
    return f"pushed {branch}"


def remove_tree(path: Path) -> None:
    """Delete a job's working directory, whatever the agent did to the permissions inside it
    (symbolic links are removed, never followed)."""
    if path.is_symlink():
        path.unlink()
        return
    if not path.exists():
        return
    for root, dirs, _files in os.walk(path):   # top-down: a directory is opened up before it is entered
        for name in [root, *(os.path.join(root, d) for d in dirs)]:
            if not os.path.islink(name):
                try:
                    os.chmod(name, stat.S_IRWXU)
                except OSError:
                    pass
    shutil.rmtree(path, ignore_errors=True)


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
