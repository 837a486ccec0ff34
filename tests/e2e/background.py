"""Runs started with the tier's local stack and checked by their tests at the end of the tier.

These scenarios are mostly waiting: a crashed runner's lease lapsing (30 s at least, three times),
a refused launch redelivered until SQS moves it to the DLQ, a run left unclaimed for ten
heartbeats, five stages of scripted agents working three tasks up to the deploy gate, a runner
stopped mid-job whose lease lapses before its job is dispatched again, a resumable session carried
across a loop-back. Started together when the stack starts (``stack`` in conftest.py asks for
``background_runs``), they wait at the same time as each other and as the rest of the tier; their
tests (tests/e2e/test_local_stack.py, tests/e2e/test_resumable_sessions.py) run last and find them
done or nearly so.

Each run has a project of its own, and its roles are set just before it starts and put back right
after: a run keeps the role versions it pinned when it started, whatever is published later.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from chalicelib.agent.client import BatonClient
from chalicelib.local.stack import LocalStack
from tests.support.agents import bare_repository, scripted_role
from tests.support.roles import restore_roles, role_specs

UNLAUNCHABLE = "e2e-unlaunchable"
STAGES = ("dev", "qa", "security", "docs", "cicd")
# The resumable agent (tests/agents/resumable.py) and the folder its session is kept in.
RESUMABLE_AGENT = Path(__file__).resolve().parents[1] / "agents" / "resumable.py"
SESSION = ".baton-e2e-session"


@contextmanager
def refusing_launches(stack: LocalStack, project: str) -> Iterator[None]:
    """The launcher refuses ``project``'s jobs (no capacity to start the agent); every other
    project's jobs start as ever."""
    launcher = stack.services.launcher
    launch = launcher.launch

    def refuse(spec: dict[str, Any]) -> str:
        if spec["project_id"] != project:
            return launch(spec)
        raise RuntimeError("no capacity to start the agent")

    launcher.launch = refuse
    try:
        yield
    finally:
        launcher.launch = launch


def start_runs(stack: LocalStack, repositories: Callable[[], Path]) -> dict[str, dict[str, Any]]:
    """Start the background runs, by name; ``repositories()`` is a fresh directory for a repository."""
    admin = BatonClient(stack.api_url, stack.admin_key)

    def start(project: str, roles: dict[str, dict[str, Any]], run: dict[str, Any]) -> dict[str, Any]:
        before = role_specs(admin)
        for role, spec in roles.items():
            admin.put(f"/roles/{role}", spec)
        repository = bare_repository(repositories(), project)
        admin.post("/projects", {"id": project, "name": project, "repository_url": f"file://{repository}"})
        started = admin.post(f"/projects/{project}/runs", run)
        restore_roles(admin, before)
        return started

    scripted = {role: scripted_role(role) for role in STAGES}
    resumable = {**scripted, "dev": {**scripted["dev"],
                                     "command": f"{sys.executable} {RESUMABLE_AGENT} fresh {{session_id}}",
                                     "resume_command": f"{sys.executable} {RESUMABLE_AGENT} resume {{session_id}}",
                                     "session_paths": [SESSION]}}
    return {
        # "crash-once" kills its runner on its first attempt, "crash-always" on every one, "steady" never.
        "crashing": start("e2e-crashes", {r: scripted[r] for r in ("dev", "qa")}, {
            "title": "crashes", "deploy_gate": False, "stages": ["dev", "qa"],
            "tasks": [{"title": "crash-once job"}, {"title": "crash-always job"}, {"title": "steady job"}]}),
        # Every stage and the deploy gate; "flaky-qa" fails QA on its first iteration.
        "gated": start("e2e-gated", scripted, {"title": "three tasks", "tasks": [
            {"title": "add login"}, {"title": "fix flaky-qa parser"}, {"title": "update docs"}]}),
        # Launches refused (``refusing_launches``); a heartbeat of 120 s makes the job's first lease
        # (the launch window) outlast SQS's redeliveries.
        "unlaunchable": start(UNLAUNCHABLE, {"dev": {**scripted["dev"], "timeout_seconds": 600,
                                                     "heartbeat_seconds": 120}},
                              {"title": "unlaunchable", "deploy_gate": False, "stages": ["dev"],
                               "tasks": [{"title": "never starts"}]}),
        # External agents heartbeating every second; the queue-timeout report after ten heartbeats.
        "unclaimed": start("e2e-external", {role: {"prompt": f"external {role}", "executor": "external",
                                                   "required_proofs": [], "timeout_seconds": 60,
                                                   "heartbeat_seconds": 1} for role in ("dev", "qa")},
                           {"title": "external agents", "deploy_gate": False, "stages": ["dev", "qa"],
                            "queue_timeout_seconds": 10, "tasks": [{"title": "waits for a person's agent"}]}),
        # A dev role that keeps a session: "flaky-qa" loops back to a dev job that resumes it;
        # "stop-once" stops its runner mid-job, and the job dispatched again once the lease lapses resumes.
        "sessions-loop-back": start("e2e-sessions", resumable, {
            "title": "resumable", "deploy_gate": False, "stages": ["dev", "qa"],
            "tasks": [{"title": "resume after flaky-qa"}]}),
        "sessions-stopped": start("e2e-sessions-stopped", resumable, {
            "title": "stopped", "deploy_gate": False, "stages": ["dev"],
            "tasks": [{"title": "stop-once then resume"}]}),
    }
