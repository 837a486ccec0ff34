"""Role configurations: what an agent of each role is told, how it runs, what it must prove.

A role config is versioned and immutable; its digest is the sha256 of its canonical JSON (the
fields that shape the agent's work), so a run can pin exactly what its agents must use.
"""

import functools

from enum import Enum
import hashlib
import json
import re
from typing import Optional

from pydantic import ConfigDict, Field, field_validator, model_validator

from .base import DomainModel
from .enums import STAGE_ROLE, Role, Stage
from .fields import STRICT_INPUT


class Executor(str, Enum):
    container = "container"   # Baton launches the agent (ECS RunTask; a subprocess locally)
    external = "external"     # the agent runs elsewhere and claims work through the API


class ProofType(str, Enum):
    screenshot = "screenshot"
    log = "log"
    report = "report"
    test_result = "test_result"
    code_diff = "code_diff"
    other = "other"


SESSION_PATH_PART = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
AGENT_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,100}$")


class RoleSpec(DomainModel):
    """The body of ``PUT /roles/{role}``: everything that defines how the role works."""

    model_config = STRICT_INPUT
    prompt: str = Field(min_length=1, max_length=20_000)
    executor: Executor = Executor.external
    command: Optional[str] = Field(default=None, max_length=4000)
    image: Optional[str] = Field(default=None, max_length=512)
    required_proofs: list[ProofType] = Field(default_factory=list, max_length=6)
    timeout_seconds: int = Field(default=3600, ge=1, le=86_400)
    heartbeat_seconds: int = Field(default=300, ge=1, le=3600)
    session_paths: list[str] = Field(
        default_factory=list, max_length=10,
        description="folders under the agent's HOME where it keeps its session (e.g. .local/share/goose/sessions, "
                    ".claude): the runner restores them before a job and saves them after, in the task's state")
    resume_command: Optional[str] = Field(
        default=None, max_length=4000,
        description="the command when a saved session exists; {session_id} is stable per task and role")
    fallback_executor: Optional[Executor] = Field(
        default=None, description="where the director may move a stage's next job when its agent keeps getting lost "
                                  "(lease churn): container needs a command")
    fallback_agent_ids: list[str] = Field(
        default_factory=list, max_length=20,
        description="agent ids the director may reserve a stage's next job for (an external executor's claimants)")

    @field_validator("fallback_agent_ids")
    @classmethod
    def _agent_ids(cls, ids: list[str]) -> list[str]:
        if any(not AGENT_ID.match(agent_id) for agent_id in ids):
            raise ValueError("an agent id is 1-100 characters of letters, digits and . _ : @ -")
        return ids

    @model_validator(mode="after")
    def _fallback_can_run(self) -> "RoleSpec":
        if self.fallback_executor == Executor.container and not self.command:
            raise ValueError("fallback_executor container needs a command to run")
        return self

    @field_validator("session_paths")
    @classmethod
    def _relative(cls, paths: list[str]) -> list[str]:
        for path in paths:
            parts = path.split("/")
            if not path or len(path) > 200 or path.startswith("/") or ".." in parts or "" in parts \
                    or not all(SESSION_PATH_PART.match(part) for part in parts):
                raise ValueError(f"session path {path!r} must be a relative folder under HOME (no '..', no '//')")
        return paths


class RoleConfig(RoleSpec):
    model_config = ConfigDict(extra="ignore", strict=False)
    role: Role
    version: int
    digest: str
    created_at: str
    created_by: str = ""


def digest_of(role: Role, spec: RoleSpec) -> str:
    body = spec.model_dump(mode="json")
    for name, unset in (("session_paths", []), ("resume_command", None), ("fallback_executor", None),
                        ("fallback_agent_ids", [])):
        if body.get(name) == unset:
            body.pop(name)   # a role without sessions or fallbacks keeps the digest it had before they existed
    canonical = json.dumps({"role": role.value, **body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def role_for_stage(stage: Stage) -> Role:
    return STAGE_ROLE[stage]


def build_config(role: Role, spec: RoleSpec, version: int, now: str, actor: str) -> RoleConfig:
    return RoleConfig(role=role, version=version, digest=digest_of(role, spec), created_at=now, created_by=actor,
                      **spec.model_dump())


_COMMON = (
    "You are the {role} agent of a software team coordinated by Baton.\n"
    "Project: {project_name} ({repository_url}, branch {branch}). Run: {run_title}.\n"
    "Task {task_id}: {task_title}\n{task_description}\n"
    "Stage {stage}, iteration {iteration}.\n\n"
    "What the previous agent handed over:\n{latest_handoff}\n\n"
    "Proofs so far:\n{proofs}\n\nFindings so far:\n{findings}\n\n"
)

_HANDOFF = (
    "\nWhen you finish, write handoff.json in your proofs folder ({proofs_dir}) with summary, work_done, "
    "decisions (with the alternatives you weighed and why), notes_for_next, learnings, open_questions, "
    "resume_prompt and confidence. Put every proof (logs, screenshots, test results, reports, diffs) in "
    "the proofs folder. Exit 0 when the stage passes, non-zero when it fails."
)


@functools.cache
def default_roles() -> dict[Role, RoleSpec]:
    """The role configs a new installation starts with (built on first use, not at import)."""
    return {
        Role.director: RoleSpec(prompt=_COMMON + "Plan the work: split the goal into tasks small enough for one agent, "
                                "order them, and say what proof each needs." + _HANDOFF, timeout_seconds=1800),
        Role.pm: RoleSpec(prompt=_COMMON + "Turn the request into acceptance criteria a tester can check, and "
                          "flag anything ambiguous as an open question." + _HANDOFF, timeout_seconds=1800),
        Role.dev: RoleSpec(prompt=_COMMON + "Implement the task in the working copy. Keep the change focused, add or "
                           "update tests, run them, and save the diff (git diff > proofs/change.diff) and the test "
                           "log as proofs. If QA or security sent the task back, fix what they found first."
                           + _HANDOFF, required_proofs=[ProofType.code_diff]),
        Role.qa: RoleSpec(prompt=_COMMON + "Verify the change against the task: run the test suite with JUnit XML "
                          "output into the proofs folder, try the edge cases the developer may have missed, and "
                          "report bugs as a bugs report (bugs.json). Fail the stage if anything is broken."
                          + _HANDOFF, required_proofs=[ProofType.test_result]),
        Role.security: RoleSpec(prompt=_COMMON + "Review the change for security problems: run the scanners "
                                "(e.g. bandit -f sarif, semgrep --sarif) into the proofs folder, read the diff for "
                                "injection, secrets, unsafe deserialization and missing authorization. Fail the "
                                "stage on any critical or high finding." + _HANDOFF,
                                required_proofs=[ProofType.report]),
        Role.docs: RoleSpec(prompt=_COMMON + "Bring the documentation up to date with the change: README, usage, "
                            "changelog. Check that examples still run. Save the docs diff as a proof." + _HANDOFF),
        Role.cicd: RoleSpec(prompt=_COMMON + "Release the run: build, tag and deploy the approved change following "
                            "the project's release process; save the build and deploy logs as proofs." + _HANDOFF,
                            required_proofs=[ProofType.log]),
    }
