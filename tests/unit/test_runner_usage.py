"""The job's usage, found and reported by the runner: the parsers on realistic agent output
(``tests/data``: Claude Code's ``--output-format json`` and ``stream-json``, goose's ``run
--output-format json`` and ``stream-json``), ``usage.json`` good and bad, garbage output, and the
runner's use of them in whole jobs against a fake API: one usage call, under the claim, after the
command and before the advance, with the wall time, never failing the job.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from chalicelib.agent import runner, usage
from chalicelib.agent.client import ApiError
from chalicelib.domain.enums import Role
from chalicelib.domain.roles import Executor, RoleSpec, digest_of

DATA = Path(__file__).resolve().parents[1] / "data"
TASK_ID = "task_usage01"
RUN_ID = "run_usage01"

CLAUDE = {"model": "claude-sonnet-4-5-20250929", "tokens_in": 42 + 21877 + 1893, "tokens_out": 2311 + 96,
          "tokens_cached": 187524, "cost_usd": 0.17545995}
GOOSE = {"model": None, "tokens_in": 60214 - 41280, "tokens_out": 1659, "tokens_cached": 41280, "cost_usd": 0.0587352}


def claude_result() -> dict[str, Any]:
    return json.loads((DATA / "claude_code_result.json").read_text())


def from_output(text: str) -> tuple[Optional[dict[str, Any]], Optional[str], list[str]]:
    return usage.usage_from_output(text)


# ---------------------------------------------------------------- Claude Code

def test_claude_code_json_result():
    found, source, warnings = from_output((DATA / "claude_code_result.json").read_text())
    assert found == CLAUDE and source == "Claude Code's result" and warnings == []


def test_claude_code_stream_json_takes_the_result_line():
    text = (DATA / "claude_code_stream.jsonl").read_text()
    assert from_output(text)[0] == CLAUDE
    # whatever the command prints after it (stderr is in the same log) does not hide it
    assert from_output(text + "Error: something on stderr\n[baton-runner] stopping the agent: timed out\n")[0] == CLAUDE


def test_claude_code_json_with_verbose_is_an_array_ending_in_the_result():
    events = [json.loads(line) for line in (DATA / "claude_code_stream.jsonl").read_text().splitlines()]
    one_line = json.dumps(events, separators=(",", ":"))
    assert from_output(one_line)[0] == CLAUDE
    # longer than the tail that is read: the array's start is cut off, its result still found
    padded = json.dumps([{"type": "user", "message": {"content": "x" * 1000}}] * 400 + events, separators=(",", ":"))
    tail = padded.encode()[-usage.OUTPUT_TAIL_BYTES:].decode()
    assert not tail.startswith("[") and from_output(tail)[0] == CLAUDE


def test_the_newest_result_wins():
    older = {**claude_result(), "total_cost_usd": 9.5}
    text = json.dumps(older) + "\n" + (DATA / "claude_code_result.json").read_text()
    assert from_output(text)[0]["cost_usd"] == CLAUDE["cost_usd"]


def test_one_model_is_the_model_and_usage_is_read_without_model_usage():
    result = claude_result()
    result["modelUsage"] = {"claude-opus-4-1-20250805": result["modelUsage"]["claude-haiku-4-5-20251001"]}
    assert from_output(json.dumps(result))[0]["model"] == "claude-opus-4-1-20250805"
    del result["modelUsage"]
    assert from_output(json.dumps(result))[0] == {**CLAUDE, "model": None, "tokens_in": 42 + 21877,
                                                  "tokens_out": 2311}


def test_per_model_figures_without_token_counts_fall_back_to_usage():
    result = {**claude_result(), "modelUsage": {"claude-sonnet-4-5-20250929": {"costUSD": 0.17}}}
    assert from_output(json.dumps(result))[0] == {**CLAUDE, "tokens_in": 42 + 21877, "tokens_out": 2311}


def test_a_model_name_the_api_would_refuse_is_reported_as_unknown():
    result = claude_result()
    result["modelUsage"] = {"claude sonnet; rm -rf /": result["modelUsage"]["claude-sonnet-4-5-20250929"]}
    found, _, warnings = from_output(json.dumps(result))
    assert found is not None and found["model"] is None and found["tokens_out"] == 2311
    assert len(warnings) == 1 and "not a model name" in warnings[0]


@pytest.mark.parametrize("change, why", [
    ({"total_cost_usd": -0.5}, "total_cost_usd is -0.5"),
    ({"total_cost_usd": 1e9}, "outside 0..10000"),
    ({"total_cost_usd": "0.17"}, "not a number"),
    ({"modelUsage": {"m": {"inputTokens": -1, "outputTokens": 2}}}, "inputTokens is -1"),
    ({"modelUsage": {"m": {"inputTokens": 10 ** 13, "outputTokens": 2}}}, "outside 0.."),
    ({"modelUsage": {"m": {"inputTokens": 1.5, "outputTokens": 2}}}, "not an integer"),
    ({"modelUsage": {"m": {"inputTokens": True, "outputTokens": 2}}}, "not an integer"),
    ({"modelUsage": None, "usage": {"input_tokens": 3}}, "no token counts"),
    ({"modelUsage": {"a": {"inputTokens": 6 * 10 ** 9, "outputTokens": 1},
                     "b": {"inputTokens": 6 * 10 ** 9, "outputTokens": 1}}}, "the sum of tokens_in"),
])
def test_absurd_claude_figures_are_rejected_with_a_warning(change, why):
    found, source, warnings = from_output(json.dumps({**claude_result(), **change}))
    assert found is None and source is None
    assert len(warnings) == 1 and "Claude Code's result in the agent's output ignored" in warnings[0]
    assert why in warnings[0]


# ---------------------------------------------------------------- goose

def test_goose_stream_json_complete_event():
    found, source, warnings = from_output((DATA / "goose_stream.jsonl").read_text())
    assert found == GOOSE and source == "goose's complete event" and warnings == []


def test_goose_json_metadata_even_when_the_document_start_is_cut_off():
    text = (DATA / "goose_run.json").read_text()
    assert from_output(text)[0] == GOOSE
    assert from_output(text[len(text) // 2:])[0] == GOOSE      # only the end of the document was read


def test_an_old_goose_with_only_its_last_turn_total_is_not_used():
    found, _, warnings = from_output('{"type":"message","message":{}}\n{"type":"complete","total_tokens":17099}\n')
    assert found is None and "no input_tokens/output_tokens" in warnings[0]


def test_goose_cache_reads_above_its_input_are_rejected():
    found, _, warnings = from_output(json.dumps({"type": "complete", "total_tokens": 10, "input_tokens": 5,
                                                 "output_tokens": 5, "cache_read_input_tokens": 9}))
    assert found is None and "exceeds its input_tokens" in warnings[0]


# ---------------------------------------------------------------- garbage

@pytest.mark.parametrize("text", [
    "",
    "plain text only\nno json here\n",
    "[" * 200_000,                                   # nesting deeper than the parser's recursion
    "{" * 100_000,
    '{"type": "result"\n' * 5_000,                   # many unterminated anchors
    "[1,\n" * 60_000,                                # many values that never end
    "42\n\"a string\"\nnull\n[1, 2, 3]\n{\"type\": \"assistant\"}\n",
    '{"type": "result", "subtype": "success", "result": "no usage at all"}\n',
    '{"type": "result", "usage": "not an object", "is_error": true}\n',
    json.dumps({"type": "result", "usage": {"input_tokens": 1, "output_tokens": 2}})[:-5],   # cut short
    "\x00\x01\x02\xff binary \ud800 junk {\"type\":",
])
def test_garbage_output_gives_no_usage_and_no_exception(text):
    started = time.monotonic()
    found, source, _ = from_output(text)
    assert found is None and source is None
    assert time.monotonic() - started < 10


def test_a_result_line_printed_as_text_by_a_tool_is_not_taken_for_one():
    """The stream sample's tool result quotes a line shaped like a result; only the real result counts."""
    lines = (DATA / "claude_code_stream.jsonl").read_text().splitlines()
    found, _, warnings = from_output("\n".join(lines[:-1]) + "\n")
    assert found is None and warnings == []


def test_read_tail_reads_only_the_end(tmp_path):
    path = tmp_path / "agent-output.log"
    path.write_bytes(b"x" * (3 * usage.OUTPUT_TAIL_BYTES) + b"END")
    tail = usage.read_tail(path, usage.OUTPUT_TAIL_BYTES)
    assert len(tail) == usage.OUTPUT_TAIL_BYTES and tail.endswith(b"END")


def test_huge_output_with_the_result_at_its_end(tmp_path):
    output = tmp_path / "agent-output.log"
    with open(output, "wb") as handle:
        for _ in range(64):
            handle.write(b"progress " * 10_000 + b"\n")     # ~5.8 MB of log before the result
        handle.write((DATA / "claude_code_result.json").read_bytes())
    proofs = tmp_path / "proofs"
    proofs.mkdir()
    body, source, warnings = usage.collect_usage(proofs, output, 12.34567)
    assert body == {**CLAUDE, "wall_seconds": 12.346} and source == "Claude Code's result" and warnings == []


def test_an_output_that_is_a_link_or_a_fifo_is_not_read(tmp_path):
    proofs = tmp_path / "proofs"
    proofs.mkdir()
    secret = tmp_path / "elsewhere.json"
    secret.write_text((DATA / "claude_code_result.json").read_text())
    link = tmp_path / "agent-output.log"
    link.symlink_to(secret)
    body, _, warnings = usage.collect_usage(proofs, link, 1.0)
    assert body == {**usage.nothing_known(), "wall_seconds": 1.0}
    assert len(warnings) == 1 and "could not be read" in warnings[0]
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    body, _, warnings = usage.collect_usage(proofs, fifo, 1.0)   # returns: no blocking open or read
    assert body["tokens_in"] == 0 and "not a regular file" in warnings[0]


def test_no_output_file_at_all_is_wall_time_only(tmp_path):
    body, source, warnings = usage.collect_usage(tmp_path, tmp_path / "missing.log", 0.5)
    assert body == {"model": None, "tokens_in": 0, "tokens_out": 0, "tokens_cached": 0, "cost_usd": 0.0,
                    "wall_seconds": 0.5}
    assert source == "nothing (wall time only)" and warnings == []


# ---------------------------------------------------------------- usage.json

def write_usage(proofs: Path, content: str) -> None:
    proofs.mkdir(exist_ok=True)
    (proofs / "usage.json").write_text(content)


def test_usage_json_wins_over_the_output_and_unknown_keys_are_ignored(tmp_path):
    output = tmp_path / "agent-output.log"
    output.write_text((DATA / "claude_code_stream.jsonl").read_text())
    write_usage(tmp_path / "proofs", json.dumps({"model": "gpt-5-codex", "tokens_in": 1200, "tokens_out": 300,
                                                 "tokens_cached": 50, "cost_usd": 0.0123, "wall_seconds": 99.0,
                                                 "provider": "openai", "notes": ["ignored"]}))
    body, source, warnings = usage.collect_usage(tmp_path / "proofs", output, 7.0)
    assert body == {"model": "gpt-5-codex", "tokens_in": 1200, "tokens_out": 300, "tokens_cached": 50,
                    "cost_usd": 0.0123, "wall_seconds": 7.0}         # the runner's wall time, not the file's
    assert source == "usage.json" and warnings == []


def test_usage_json_may_leave_out_counts_and_model(tmp_path):
    write_usage(tmp_path / "proofs", '{"cost_usd": 2}')
    body, _, _ = usage.collect_usage(tmp_path / "proofs", tmp_path / "none.log", 1.0)
    assert body == {"model": None, "tokens_in": 0, "tokens_out": 0, "tokens_cached": 0, "cost_usd": 2.0,
                    "wall_seconds": 1.0}


@pytest.mark.parametrize("content, why", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "holds a JSON list"),
    ('"usage"', "holds a JSON str"),
    ("{}", "has none of"),
    ('{"model": "m"}', "has none of"),
    ('{"tokens_in": -5, "tokens_out": 1}', "tokens_in is -5"),
    ('{"tokens_in": "5", "tokens_out": 1}', "not an integer"),
    ('{"tokens_in": 5.0, "tokens_out": 1}', "not an integer"),
    ('{"tokens_in": true, "tokens_out": 1}', "not an integer"),
    ('{"tokens_in": 1, "tokens_out": 100000000000}', "outside 0.."),
    ('{"tokens_in": 1, "cost_usd": NaN}', "cost_usd is nan"),
    ('{"tokens_in": 1, "cost_usd": Infinity}', "outside 0.."),
    ('{"tokens_in": 1, "cost_usd": 50000}', "outside 0.."),
    ('{"tokens_in": 1, "cost_usd": null}', "not a number"),
    ('{"tokens_in": 1, "model": ""}', "not a model name"),
    ('{"tokens_in": 1, "model": 7}', "not a model name"),
    ('{"tokens_in": 1, "model": "' + "m" * 101 + '"}', "not a model name"),
    ('{"tokens_in": 1, "wall_seconds": -1}', "wall_seconds is -1"),
    ("[" * 50_000, "not valid JSON"),
    ('{"tokens_in": 1, "pad": "' + "x" * usage.USAGE_FILE_MAX_BYTES + '"}', "larger than 64 KB"),
])
def test_a_bad_usage_json_is_a_warning_and_the_output_is_used_instead(tmp_path, content, why):
    output = tmp_path / "agent-output.log"
    output.write_text((DATA / "claude_code_result.json").read_text())
    write_usage(tmp_path / "proofs", content)
    body, source, warnings = usage.collect_usage(tmp_path / "proofs", output, 3.0)
    assert body == {**CLAUDE, "wall_seconds": 3.0} and source == "Claude Code's result"
    assert len(warnings) == 1 and warnings[0].startswith("usage.json ignored: ") and why in warnings[0]


def test_a_usage_json_link_is_not_followed(tmp_path):
    proofs = tmp_path / "proofs"
    proofs.mkdir()
    target = tmp_path / "target.json"
    target.write_text('{"tokens_in": 1, "tokens_out": 1}')
    (proofs / "usage.json").symlink_to(target)
    body, source, warnings = usage.collect_usage(proofs, tmp_path / "none.log", 1.0)
    assert source == "nothing (wall time only)" and body["tokens_in"] == 0
    assert warnings == ["usage.json ignored: it is a symbolic link"]


# ---------------------------------------------------------------- whole jobs against a fake API

class FakeBaton:
    """Stands in for BatonClient: answers what the runner asks, records what it sends (and under
    which claim); ``usage_error`` makes the usage call fail."""

    def __init__(self, command: str, repository_url: str, usage_error: Optional[Exception] = None):
        spec = RoleSpec(prompt="Work on {task_title}.", executor=Executor.container, command=command,
                        required_proofs=[], timeout_seconds=120, heartbeat_seconds=60)
        self.config = {**spec.model_dump(mode="json"), "role": "dev", "version": 1, "digest": digest_of(Role.dev, spec)}
        self.repository_url = repository_url
        self.usage_error = usage_error
        self.claim_id: Optional[str] = None
        self.sent: list[tuple[str, Any, Optional[str]]] = []
        self.lock = threading.Lock()

    def task(self) -> dict[str, Any]:
        return {"id": TASK_ID, "run_id": RUN_ID, "project_id": "proj", "title": "add flag", "description": "d",
                "stage": "dev", "iteration": 1, "source": "planned"}

    def for_claim(self, claim_id: str) -> "FakeBaton":
        self.claim_id = claim_id
        return self

    def get(self, path: str) -> Any:
        if path == f"/tasks/{TASK_ID}/context":
            return {"task": self.task(), "role": {"role": "dev", "version": 1},
                    "run": {"title": "r", "stages": ["dev", "qa"], "pinned_roles": {"dev": self.config["digest"]}},
                    "project": {"name": "P", "repository_url": self.repository_url, "primary_branch": "main"},
                    "handoffs": [], "proofs": []}
        if path == "/roles/dev/versions":
            return {"items": [self.config]}
        raise AssertionError(f"unexpected GET {path}")

    def post_status(self, path: str, body: Any = None) -> tuple[int, Any]:
        return 200, {"task": self.task(), "claim": {"claim_id": "clm_fake", "expires_at": "2099-01-01T00:00:00Z"}}

    def post(self, path: str, body: Any = None, headers: Optional[dict[str, str]] = None) -> Any:
        with self.lock:
            self.sent.append((path, body, self.claim_id))
        if path.endswith("/usage") and self.usage_error is not None:
            raise self.usage_error
        if path.endswith("/usage"):
            return {"task_usage": {}, "run_usage": {}}
        return {}

    def paths(self) -> list[str]:
        with self.lock:
            return [path.rsplit("/", 1)[-1] for path, _, _ in self.sent if not path.endswith("/heartbeat")]

    def bodies(self, suffix: str) -> list[Any]:
        with self.lock:
            return [body for path, body, _ in self.sent if path.endswith(suffix)]


@pytest.fixture
def uploads(monkeypatch):
    kept: list[str] = []

    def upload(client, task_id, path, proof_type):
        kept.append(f"{path.parent.name}/{path.name}" if path.parent.name == "deeper" else path.name)
        return {"id": f"prf_{len(kept)}"}

    monkeypatch.setattr(runner, "upload_proof", upload)
    return kept


@pytest.fixture
def origin(tmp_path) -> str:
    seed, bare = tmp_path / "seed", tmp_path / "origin.git"
    seed.mkdir()
    (seed / "README.md").write_text("hello\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "start"]):
        subprocess.run(["git", *args], cwd=seed, check=True, capture_output=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(bare)], check=True, capture_output=True)
    return f"file://{bare}"


def agent(tmp_path: Path, body: str) -> str:
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\n" + body)
    return f"sh {script}"


def run(client: FakeBaton, tmp_path: Path) -> int:
    return runner.run_job({"job_id": "job_u1", "task_id": TASK_ID, "stage": "dev", "attempt": 1}, client,
                          tmp_path / "jobs")


def test_a_claude_code_job_reports_its_usage_once_before_the_advance(tmp_path, origin, uploads, capsys):
    command = agent(tmp_path, f"sleep 0.3\ncat {DATA / 'claude_code_stream.jsonl'}\n"
                              "echo 'a warning on stderr' >&2\necho notes > \"$BATON_PROOFS_DIR/notes.txt\"\n")
    client = FakeBaton(command, origin)
    assert run(client, tmp_path) == 0
    (reported,) = client.bodies("/usage")
    assert {k: v for k, v in reported.items() if k != "wall_seconds"} == CLAUDE
    assert 0.3 <= reported["wall_seconds"] < 60
    assert client.paths() == ["usage", "handoffs", "advance"]        # after the command, before the advance
    assert all(claim == "clm_fake" for path, _, claim in client.sent if path.endswith("/usage"))
    assert client.bodies("/advance")[0]["result"] == "pass"
    assert sorted(uploads) == ["agent-output.log", "notes.txt"]
    assert "reported usage from Claude Code's result: 23812 in, 2407 out" in capsys.readouterr().out


def test_a_failed_command_reports_its_usage_json_which_is_no_proof(tmp_path, origin, uploads):
    command = agent(tmp_path, "echo '{\"model\": \"qwen3-coder\", \"tokens_in\": 900, \"tokens_out\": 80, "
                              "\"cost_usd\": 0.002}' > \"$BATON_PROOFS_DIR/usage.json\"\n"
                              "mkdir -p \"$BATON_PROOFS_DIR/deeper\"\n"
                              "echo '{\"kept\": true}' > \"$BATON_PROOFS_DIR/deeper/usage.json\"\n"
                              "echo 'tests failed'\nexit 3\n")
    client = FakeBaton(command, origin)
    assert run(client, tmp_path) == 0
    (reported,) = client.bodies("/usage")
    assert {k: v for k, v in reported.items() if k != "wall_seconds"} == {
        "model": "qwen3-coder", "tokens_in": 900, "tokens_out": 80, "tokens_cached": 0, "cost_usd": 0.002}
    assert reported["wall_seconds"] >= 0
    assert client.paths() == ["usage", "handoffs", "advance"]
    assert client.bodies("/advance")[0]["result"] == "fail"
    # the usage.json the runner read is not a proof; a file of that name deeper down is the agent's own
    assert sorted(uploads) == ["agent-output.log", "deeper/usage.json"]


@pytest.mark.parametrize("error", [ApiError(404, "not_found", "no route /tasks/{id}/usage"),
                                   ApiError(0, "unreachable", "cannot reach the Baton API"),
                                   RuntimeError("something unexpected")])
def test_a_failing_usage_call_is_a_warning_not_a_failed_job(tmp_path, origin, uploads, capsys, error):
    client = FakeBaton(agent(tmp_path, f"cat {DATA / 'claude_code_result.json'}\n"), origin, usage_error=error)
    assert run(client, tmp_path) == 0
    assert client.paths() == ["usage", "handoffs", "advance"]
    assert client.bodies("/advance")[0]["result"] == "pass"
    out = capsys.readouterr().out
    assert "warning: usage not reported" in out and "the job goes on" in out


def test_a_job_with_garbage_output_reports_its_wall_time(tmp_path, origin, uploads, capsys):
    garbage = "head -c 300000 /dev/urandom\necho '{\"type\": \"result\", \"total_cost_usd\": -1}'\n"
    client = FakeBaton(agent(tmp_path, garbage), origin)
    assert run(client, tmp_path) == 0
    (reported,) = client.bodies("/usage")
    assert {k: v for k, v in reported.items() if k != "wall_seconds"} == usage.nothing_known()
    out = capsys.readouterr().out
    assert "warning: Claude Code's result in the agent's output ignored: total_cost_usd is -1" in out


def test_a_collector_that_breaks_still_reports_the_wall_time(tmp_path, origin, uploads, monkeypatch):
    def broken(*args):
        raise KeyError("a bug")

    monkeypatch.setattr(usage, "collect_usage", broken)
    client = FakeBaton(agent(tmp_path, "true\n"), origin)
    assert run(client, tmp_path) == 0
    (reported,) = client.bodies("/usage")
    assert reported["tokens_in"] == 0 and reported["wall_seconds"] >= 0


def test_no_command_no_usage(tmp_path, uploads):
    client = FakeBaton(agent(tmp_path, "true\n"), f"file://{tmp_path}/no-such-repo.git")
    assert run(client, tmp_path) == runner.EXIT_RUNNER_FAILED     # the clone failed: the command never ran
    assert client.bodies("/usage") == [] and client.paths() == ["advance"]


def test_a_lost_lease_reports_no_usage(tmp_path, origin, uploads, monkeypatch):
    """The claim is someone else's now: a usage call under it would be refused, and is not made."""
    def lost(command, cwd, env, output_path, timeout, beat):
        beat.lost = "lease expired"
        return 124

    monkeypatch.setattr(runner, "run_command", lost)
    client = FakeBaton(agent(tmp_path, "true\n"), origin)
    assert run(client, tmp_path) == 3
    assert client.bodies("/usage") == [] and client.paths() == []
