"""What a stage passes on, through the runner: the ``outputs.json`` a command leaves (sent with the
advance, never a proof; a bad one is a warning and no outputs; outputs the server refuses are
dropped in a second advance that keeps the verdict), and what the agent is told of its task's
source and inputs (``BATON_TASK_SOURCE``, ``BATON_INPUTS``, ``inputs.json``). Last, a release and
its rollback worked end to end by the demo's cicd agent through the runner, against a fake API
and a real git origin in tmp_path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Optional

import pytest

from chalicelib.agent import outputs as stage_outputs
from chalicelib.agent import runner
from chalicelib.agent.client import ApiError
from chalicelib.agent.work import agent_environment
from chalicelib.domain.enums import Role
from chalicelib.domain.roles import Executor, RoleSpec, digest_of

ROOT = Path(__file__).resolve().parents[2]
CICD = ROOT / "chalicelib" / "demo" / "agents" / "cicd.py"
RUN_ID = "run_outputs01"
TASK_ID = "task_outputs01"


class FakeBaton:
    """Stands in for BatonClient: serves one task's context and role, records what the runner
    sends; ``advance_errors`` are raised by the first advances, in order."""

    def __init__(self, command: str, repository_url: str, *, task_id: str = TASK_ID, stage: str = "dev",
                 source: str = "manual", inputs: Optional[dict[str, Any]] = None, description: str = "d",
                 advance_errors: tuple[ApiError, ...] = ()):
        self.role = runner.STAGE_ROLE[stage]
        spec = RoleSpec(prompt="Work on {task_title} ({task_source}) with {inputs}.", executor=Executor.container,
                        command=command, required_proofs=[], timeout_seconds=120, heartbeat_seconds=60)
        self.config = {**spec.model_dump(mode="json"), "role": self.role, "version": 1,
                       "digest": digest_of(Role(self.role), spec)}
        self.repository_url = repository_url
        self.task_id, self.stage, self.source = task_id, stage, source
        self.inputs, self.description = inputs, description
        self.advance_errors = list(advance_errors)
        self.sent: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def task(self) -> dict[str, Any]:
        task = {"id": self.task_id, "run_id": RUN_ID, "project_id": "proj", "title": f"{self.source} task",
                "description": self.description, "stage": self.stage, "iteration": 1, "source": self.source,
                "outputs": {}}
        if self.inputs is not None:
            task["inputs"] = self.inputs
        return task

    def for_claim(self, claim_id: str) -> "FakeBaton":
        return self

    def get(self, path: str) -> Any:
        if path == f"/tasks/{self.task_id}/context":
            return {"task": self.task(), "role": {"role": self.role, "version": 1},
                    "run": {"title": "r", "stages": ["dev", "qa", "cicd"],
                            "pinned_roles": {self.role: self.config["digest"]}},
                    "project": {"name": "P", "repository_url": self.repository_url, "primary_branch": "main"},
                    "handoffs": [], "proofs": []}
        if path == f"/roles/{self.role}/versions":
            return {"items": [self.config]}
        raise AssertionError(f"unexpected GET {path}")

    def post_status(self, path: str, body: Any = None) -> tuple[int, Any]:
        return 200, {"task": self.task(), "claim": {"claim_id": "clm_fake", "expires_at": "2099-01-01T00:00:00Z"}}

    def post(self, path: str, body: Any = None, headers: Optional[dict[str, str]] = None) -> Any:
        with self.lock:
            self.sent.append((path, body))
            if path.endswith("/advance") and self.advance_errors:
                raise self.advance_errors.pop(0)
        if path.endswith("/usage"):
            return {"task_usage": {}, "run_usage": {}}
        return {}

    def bodies(self, suffix: str) -> list[Any]:
        with self.lock:
            return [body for path, body in self.sent if path.endswith(suffix)]


@pytest.fixture
def uploads(monkeypatch):
    kept: list[str] = []

    def upload(client, task_id, path, proof_type):
        kept.append(path.relative_to(path.parents[1]).as_posix() if path.parent.name == "deeper" else path.name)
        return {"id": f"prf_{len(kept)}"}

    monkeypatch.setattr(runner, "upload_proof", upload)
    return kept


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture
def bare(tmp_path) -> Path:
    seed, bare = tmp_path / "seed", tmp_path / "origin.git"
    seed.mkdir()
    (seed / "README.md").write_text("hello\n")
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", "-A")
    git(seed, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "base")
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    return bare


@pytest.fixture
def origin(bare) -> str:
    return f"file://{bare}"


def agent(tmp_path: Path, body: str) -> str:
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\necho working\n" + body)
    return f"sh {script}"


def write_outputs(tmp_path: Path, content: str) -> str:
    """An agent that leaves ``content`` as its outputs.json (written from a file, byte for byte)."""
    source = tmp_path / "outputs-source.json"
    source.write_bytes(content.encode())
    return agent(tmp_path, f'cp "{source}" "$BATON_PROOFS_DIR/outputs.json"\n')


def run(client: FakeBaton, tmp_path: Path, stage: str = "dev") -> int:
    return runner.run_job({"job_id": f"job_{client.task_id}", "task_id": client.task_id, "stage": stage,
                           "attempt": 1}, client, tmp_path / "jobs")


# ---------------------------------------------------------------- outputs.json → the advance

def test_outputs_json_goes_with_the_advance_and_is_no_proof(tmp_path, origin, uploads, capsys):
    command = agent(tmp_path, 'echo \'{"release_commit": "abc1234", "base_commit": "def5678", "n": [1, 2]}\' '
                              '> "$BATON_PROOFS_DIR/outputs.json"\n'
                              'mkdir -p "$BATON_PROOFS_DIR/deeper"\n'
                              'echo \'{"kept": true}\' > "$BATON_PROOFS_DIR/deeper/outputs.json"\n'
                              'echo done > "$BATON_PROOFS_DIR/notes.txt"\n')
    client = FakeBaton(command, origin)
    assert run(client, tmp_path) == 0
    (advanced,) = client.bodies("/advance")
    assert advanced["result"] == "pass" and advanced["claim_id"] == "clm_fake"
    assert advanced["outputs"] == {"release_commit": "abc1234", "base_commit": "def5678", "n": [1, 2]}
    # the outputs.json the runner read is not a proof; a file of that name deeper down is the agent's own
    assert sorted(uploads) == ["agent-output.log", "deeper/outputs.json", "notes.txt"]
    assert "advanced task task_outputs01: pass with outputs base_commit, n, release_commit" in capsys.readouterr().out


def test_a_failed_stage_sends_its_outputs_too(tmp_path, origin, uploads):
    command = agent(tmp_path, 'echo \'{"base_commit": "def5678"}\' > "$BATON_PROOFS_DIR/outputs.json"\nexit 1\n')
    client = FakeBaton(command, origin)
    assert run(client, tmp_path) == 0
    (advanced,) = client.bodies("/advance")
    assert advanced["result"] == "fail" and advanced["outputs"] == {"base_commit": "def5678"}


@pytest.mark.parametrize("command", ["true\n", 'echo "{}" > "$BATON_PROOFS_DIR/outputs.json"\n'])
def test_no_outputs_no_outputs_key(tmp_path, origin, uploads, command):
    client = FakeBaton(agent(tmp_path, command), origin)
    assert run(client, tmp_path) == 0
    (advanced,) = client.bodies("/advance")
    assert "outputs" not in advanced and advanced["result"] == "pass"
    assert uploads == ["agent-output.log"]


BIG = stage_outputs.MAX_OUTPUTS_BYTES


@pytest.mark.parametrize("content, why", [
    ("{not json", "it is not valid JSON"),
    ("[1, 2]", "it holds a JSON list, not an object"),
    ('"text"', "it holds a JSON str, not an object"),
    ("null", "it holds a JSON NoneType, not an object"),
    ('{"n": NaN}', "it is not valid JSON"),
    ('{"n": Infinity}', "it is not valid JSON"),
    ("[" * 50_000, "it is larger than 16 KB"),
    ("[" * 10_000, "it is not valid JSON"),
    ('{"pad": "' + "x" * BIG + '"}', "it is larger than 16 KB"),
    ('{"pad": "' + "é" * (BIG // 3) + '"}', "its compact JSON is larger than 16 KB"),   # \u00e9 is 6 characters
    ("\xff\xfe{}", "it is not valid JSON"),
])
def test_a_bad_outputs_json_is_a_warning_and_no_outputs(tmp_path, origin, uploads, capsys, content, why):
    command = write_outputs(tmp_path, content) if not content.startswith("\xff") else agent(
        tmp_path, 'printf "\\377\\376{}" > "$BATON_PROOFS_DIR/outputs.json"\n')
    client = FakeBaton(command, origin)
    assert run(client, tmp_path) == 0
    (advanced,) = client.bodies("/advance")
    assert "outputs" not in advanced and advanced["result"] == "pass"     # the verdict is the command's
    assert f"outputs.json ignored: {why}" in advanced["notes"]
    assert f"warning: outputs.json ignored: {why}; advancing without outputs" in capsys.readouterr().out
    assert uploads == ["agent-output.log"]


def test_an_outputs_json_just_under_the_limit_is_sent(tmp_path, origin, uploads):
    value = {"pad": "x" * (BIG - len('{"pad":""}'))}
    assert len(stage_outputs.compact(value)) == BIG
    client = FakeBaton(write_outputs(tmp_path, stage_outputs.compact(value)), origin)   # 16 KB on disk too
    assert run(client, tmp_path) == 0
    assert client.bodies("/advance")[0]["outputs"] == value


@pytest.mark.parametrize("make, why", [
    ('ln -s "$SECRET" "$BATON_PROOFS_DIR/outputs.json"', "it is a symbolic link"),
    ('mkfifo "$BATON_PROOFS_DIR/outputs.json"', "outputs.json is not a regular file"),
    ('mkdir "$BATON_PROOFS_DIR/outputs.json"', "outputs.json is not a regular file"),
])
def test_an_outputs_json_that_is_no_regular_file_is_not_read(tmp_path, origin, uploads, make, why):
    secret = tmp_path / "elsewhere.json"
    secret.write_text('{"stolen": true}')
    command = agent(tmp_path, f'SECRET="{secret}"\n{make}\n')
    client = FakeBaton(command, origin)
    assert run(client, tmp_path) == 0      # no blocking on the FIFO
    (advanced,) = client.bodies("/advance")
    assert "outputs" not in advanced and advanced["result"] == "pass"
    assert why in advanced["notes"]


# ---------------------------------------------------------------- outputs the server refuses

TOO_LARGE = ApiError(422, "outputs_too_large", "the task's outputs would exceed 16 KB of JSON with these")
INVALID_OUTPUTS = ApiError(400, "invalid_body", "the body is not valid: check outputs",
                           [{"loc": ["outputs"], "msg": "outputs must be at most 16 KB of JSON",
                             "type": "value_error"}])


@pytest.mark.parametrize("refusal", [TOO_LARGE, ApiError(400, TOO_LARGE.code, TOO_LARGE.message), INVALID_OUTPUTS])
@pytest.mark.parametrize("exit_code, result", [(0, "pass"), (1, "fail")])
def test_refused_outputs_are_dropped_and_the_verdict_kept(tmp_path, origin, uploads, capsys, refusal, exit_code,
                                                           result):
    command = agent(tmp_path, f'echo \'{{"release_commit": "abc1234"}}\' > "$BATON_PROOFS_DIR/outputs.json"\n'
                              f'exit {exit_code}\n')
    client = FakeBaton(command, origin, advance_errors=(refusal,))
    assert run(client, tmp_path) == 0
    first, second = client.bodies("/advance")
    assert first["outputs"] == {"release_commit": "abc1234"} and first["result"] == result
    assert "outputs" not in second and second["result"] == result
    assert second["notes"] == f"{first['notes']}\noutputs not kept: {refusal.message}"
    out = capsys.readouterr().out
    assert f"the outputs were refused ({refusal.code}: {refusal.message}); advancing {result} without them" in out
    assert f"advanced task {TASK_ID}: {result}\n" in out


def test_a_pass_that_cannot_pass_fails_with_its_outputs(tmp_path, origin, uploads):
    """A 422 about the verdict (a required proof missing) is not about the outputs: the stage fails, outputs kept."""
    command = agent(tmp_path, 'echo \'{"base_commit": "def5678"}\' > "$BATON_PROOFS_DIR/outputs.json"\n')
    missing = ApiError(422, "proofs_missing", "a code_diff proof is required")
    client = FakeBaton(command, origin, advance_errors=(missing,))
    assert run(client, tmp_path) == 0
    first, second = client.bodies("/advance")
    assert (first["result"], second["result"]) == ("pass", "fail")
    assert second["outputs"] == {"base_commit": "def5678"}


def test_cannot_pass_then_outputs_refused_still_fails(tmp_path, origin, uploads):
    command = agent(tmp_path, 'echo \'{"base_commit": "def5678"}\' > "$BATON_PROOFS_DIR/outputs.json"\n')
    client = FakeBaton(command, origin, advance_errors=(ApiError(422, "proofs_missing", "a proof is required"),
                                                        TOO_LARGE))
    assert run(client, tmp_path) == 0
    bodies = client.bodies("/advance")
    assert [(b["result"], "outputs" in b) for b in bodies] == [("pass", True), ("fail", True), ("fail", False)]


def test_an_advance_refused_for_something_else_is_not_retried(tmp_path, origin, uploads):
    command = agent(tmp_path, 'echo \'{"base_commit": "def5678"}\' > "$BATON_PROOFS_DIR/outputs.json"\n')
    client = FakeBaton(command, origin, advance_errors=(ApiError(409, "lease_not_held", "the lease is not held"),))
    assert run(client, tmp_path) == 4
    assert len(client.bodies("/advance")) == 1


@pytest.mark.parametrize("error, refused", [
    (TOO_LARGE, True),
    (INVALID_OUTPUTS, True),
    (ApiError(400, "invalid_body", "check body.outputs", [{"loc": ["body", "outputs"], "msg": "x"}]), True),
    (ApiError(400, "invalid_body", "check notes", [{"loc": ["notes"], "msg": "too long"}]), False),
    (ApiError(422, "proofs_missing", "a proof is required"), False),
    (ApiError(409, "outputs_too_large", "not a validation status"), False),
    (ApiError(400, "invalid_body", "odd details", ["outputs", {"loc": None}]), False),
])
def test_refuses_outputs(error, refused):
    assert stage_outputs.refuses_outputs(error) is refused


# ---------------------------------------------------------------- the task's source and inputs → the agent

ENV_AGENT = ('env > "$OUT/env.txt"\ncp "$BATON_INPUTS_FILE" "$OUT/inputs.json"\n'
             'cp "$BATON_PROMPT_FILE" "$OUT/prompt.md"\n')


def seen_env(out: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (out / "env.txt").read_text().splitlines() if "=" in line)


def test_the_agent_gets_its_task_source_and_inputs(tmp_path, origin, uploads):
    out = tmp_path / "out"
    out.mkdir()
    inputs = {"release_task_id": "task_rel01", "release_commit": "abc1234", "base_commit": "def5678"}
    client = FakeBaton(agent(tmp_path, f'OUT="{out}"\n' + ENV_AGENT), origin, stage="cicd", source="rollback",
                       inputs=inputs)
    assert run(client, tmp_path, "cicd") == 0
    env = seen_env(out)
    assert env["BATON_TASK_SOURCE"] == "rollback"
    assert json.loads(env["BATON_INPUTS"]) == inputs
    assert json.loads((out / "inputs.json").read_text()) == inputs
    inputs_file = Path(env["BATON_INPUTS_FILE"])
    assert inputs_file.name == "inputs.json" and inputs_file.parent == Path(env["BATON_PROMPT_FILE"]).parent
    prompt = f"Work on rollback task (rollback) with {json.dumps(inputs, sort_keys=True)}."
    assert (out / "prompt.md").read_text() == prompt
    assert not inputs_file.exists()          # gone with the job's work dir
    # a rollback is a cicd-only pipeline like a release: passing it hands over to the director
    assert client.bodies("/handoffs")[0]["to_role"] == "director"


@pytest.mark.parametrize("inputs", [None, {}, ["not", "an", "object"]])
def test_a_task_without_inputs_gets_an_empty_object(tmp_path, origin, uploads, inputs):
    out = tmp_path / "out"
    out.mkdir()
    client = FakeBaton(agent(tmp_path, f'OUT="{out}"\n' + ENV_AGENT), origin, source="manual", inputs=inputs)
    assert run(client, tmp_path) == 0
    env = seen_env(out)
    assert env["BATON_TASK_SOURCE"] == "manual" and env["BATON_INPUTS"] == "{}"
    assert (out / "inputs.json").read_text() == "{}"


def test_the_new_descriptors_are_on_the_allow_list(tmp_path):
    descriptors = {"BATON_TASK_SOURCE": "rollback", "BATON_INPUTS": '{"a":1}', "BATON_INPUTS_FILE": "/w/inputs.json",
                   "BATON_INPUTS_SECRET": "x"}
    env = agent_environment(descriptors, tmp_path / "home", tmp_path / "tmp", {"PATH": "/bin"})
    assert {n: v for n, v in env.items() if n.startswith("BATON_")} == {
        "BATON_TASK_SOURCE": "rollback", "BATON_INPUTS": '{"a":1}', "BATON_INPUTS_FILE": "/w/inputs.json"}


@pytest.mark.parametrize("source, stage, passed, role", [
    ("release", "cicd", True, "director"),
    ("rollback", "cicd", True, "director"),
    ("rollback", "cicd", False, "dev"),
    ("manual", "dev", True, "qa"),
    ("manual", "qa", True, "cicd"),
    ("manual", "cicd", True, "director"),
])
def test_next_role_treats_a_rollback_like_a_release(source, stage, passed, role):
    context = {"task": {"stage": stage, "source": source}, "run": {"stages": ["dev", "qa", "sec", "docs", "cicd"]}}
    if source == "manual" and stage == "qa":
        context["run"]["stages"] = ["dev", "qa"]
    assert runner.next_role(context, passed) == role


# ---------------------------------------------------------------- a release and its rollback, end to end

def push_task_branch(tmp_path: Path, bare: Path, task_id: str, name: str) -> None:
    person = tmp_path / f"person-{task_id}"
    git(tmp_path, "clone", "-q", str(bare), str(person))
    git(person, "checkout", "-q", "-b", f"baton/{RUN_ID}/{task_id}")
    (person / f"{name}.py").write_text(f"def {name}():\n    return 1\n")
    git(person, "add", "-A")
    git(person, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", f"add {name}")
    git(person, "push", "-q", "origin", f"baton/{RUN_ID}/{task_id}")


def test_a_release_and_its_rollback_through_the_runner(tmp_path, bare, origin, uploads):
    base = git(bare, "rev-parse", "main")
    push_task_branch(tmp_path, bare, "task_a", "truncate")
    push_task_branch(tmp_path, bare, "task_b", "word_count")
    command = f"{sys.executable} {CICD}"

    release = FakeBaton(command, origin, task_id="task_rel01", stage="cicd", source="release")
    assert run(release, tmp_path / "release", "cicd") == 0
    (released,) = release.bodies("/advance")
    release_commit = git(bare, "rev-parse", "main")
    assert released["result"] == "pass"
    assert released["outputs"] == {"base_commit": base, "release_commit": release_commit}
    assert "release.log" in uploads and "outputs.json" not in uploads

    reason = "the word count is wrong"
    rollback = FakeBaton(command, origin, task_id="task_rb01", stage="cicd", source="rollback",
                         inputs={"release_task_id": "task_rel01", **released["outputs"]},
                         description=f"Roll back the release of run {RUN_ID} ({release_commit}), asked by "
                                     f"human:alice: {reason}")
    assert run(rollback, tmp_path / "rollback", "cicd") == 0
    (rolled,) = rollback.bodies("/advance")
    head = git(bare, "rev-parse", "main")
    assert rolled["result"] == "pass"
    assert rolled["outputs"] == {"rollback_commit": head, "reverted_release_commit": release_commit,
                                 "restored_base_commit": base}
    assert git(bare, "rev-parse", "main^{tree}") == git(bare, "rev-parse", f"{base}^{{tree}}")
    assert git(bare, "rev-parse", "main^") == release_commit
    subject = f"Rollback of release {release_commit} (run {RUN_ID}): {reason}"
    assert git(bare, "log", "-1", "--format=%s", "main") == subject
    assert "rollback.log" in uploads
    (handoff,) = rollback.bodies("/handoffs")
    assert handoff["to_role"] == "director" and handoff["summary"].startswith("Rolled back release")
    # the runner published nothing of its own: main is the agent's, the rollback's branch was never pushed
    assert git(bare, "branch", "--list", f"baton/{RUN_ID}/task_rb01") == ""
