"""The CLI's pure parts, without an API: configuration precedence, the tasks file, the progress
bars of ``run watch``, the multipart form of a proof upload, and the error → exit-code mapping."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from chalicelib.agent.client import ApiError
from chalicelib.cli.commands.proofs import proof_filename
from chalicelib.cli.commands.runs import summarize
from chalicelib.cli.config import NOT_CONFIGURED, resolve
from chalicelib.cli.documents import load_document, parse_tasks_file
from chalicelib.cli.errors import CliError, ExitCode, describe, exit_code_for
from chalicelib.agent.transfer import encode_multipart
from chalicelib.cli.watch import stage_bars, watch


def config_file(folder: Path, url: str, key: str) -> Path:
    (folder / ".baton").mkdir(parents=True, exist_ok=True)
    path = folder / ".baton" / "config.json"
    path.write_text(json.dumps({"api_url": url, "api_key": key}))
    return path


# --------------------------------------------------------------------------- configuration


def test_options_win_over_the_environment_which_wins_over_the_file(tmp_path):
    config_file(tmp_path, "http://file:1", "bt_file")
    env = {"BATON_API_URL": "http://env:2", "BATON_API_KEY": "bt_env"}
    chosen = resolve("http://opt:3/", "bt_opt", environ=env, cwd=tmp_path)
    assert (chosen.api_url, chosen.api_key, chosen.url_source) == ("http://opt:3", "bt_opt", "--api-url")
    chosen = resolve(None, None, environ=env, cwd=tmp_path)
    assert (chosen.api_url, chosen.api_key, chosen.key_source) == ("http://env:2", "bt_env", "BATON_API_KEY")
    chosen = resolve(None, None, environ={}, cwd=tmp_path)
    assert (chosen.api_url, chosen.api_key) == ("http://file:1", "bt_file")
    assert chosen.url_source == chosen.key_source == str(tmp_path / ".baton" / "config.json")


def test_the_file_is_found_in_a_parent_and_baton_config_points_anywhere(tmp_path):
    config_file(tmp_path, "http://parent:1", "bt_parent")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert resolve(environ={}, cwd=deep).api_url == "http://parent:1"
    elsewhere = config_file(tmp_path / "elsewhere", "http://named:2", "bt_named")
    assert resolve(environ={"BATON_CONFIG": str(elsewhere)}, cwd=deep).api_key == "bt_named"
    with pytest.raises(CliError) as missing:
        resolve(environ={"BATON_CONFIG": str(tmp_path / "nope.json")}, cwd=deep)
    assert missing.value.exit_code == ExitCode.USAGE and "nope.json" in missing.value.message


def test_a_key_from_the_file_is_never_sent_to_another_api(tmp_path):
    config_file(tmp_path, "http://127.0.0.1:8000", "bt_local_admin")
    with pytest.raises(CliError) as refused:
        resolve(environ={"BATON_API_URL": "https://baton.example.com"}, cwd=tmp_path)
    assert refused.value.exit_code == ExitCode.USAGE and "BATON_API_KEY" in refused.value.message
    same = resolve(environ={"BATON_API_URL": "http://127.0.0.1:8000/"}, cwd=tmp_path)
    assert same.api_key == "bt_local_admin"
    key_only = resolve(environ={"BATON_API_KEY": "bt_other"}, cwd=tmp_path)
    assert (key_only.api_url, key_only.api_key) == ("http://127.0.0.1:8000", "bt_other")


def test_no_configuration_and_bad_files_are_usage_errors(tmp_path):
    with pytest.raises(CliError) as none:
        resolve(environ={}, cwd=tmp_path)
    assert none.value.exit_code == ExitCode.USAGE and none.value.message == NOT_CONFIGURED
    (tmp_path / ".baton").mkdir()
    (tmp_path / ".baton" / "config.json").write_text("{not json")
    with pytest.raises(CliError) as broken:
        resolve(environ={}, cwd=tmp_path)
    assert broken.value.exit_code == ExitCode.USAGE and "cannot read" in broken.value.message
    with pytest.raises(CliError) as scheme:
        resolve("127.0.0.1:8000", "bt_x", environ={}, cwd=tmp_path)
    assert "http://" in scheme.value.message


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("status, code", [(0, ExitCode.UNREACHABLE), (401, ExitCode.AUTH), (403, ExitCode.AUTH),
                                          (404, ExitCode.NOT_FOUND), (400, ExitCode.FAILED), (409, ExitCode.FAILED),
                                          (422, ExitCode.FAILED), (500, ExitCode.FAILED)])
def test_api_errors_map_to_exit_codes(status, code):
    assert exit_code_for(ApiError(status, "x", "m")) == code


def test_an_api_error_reads_as_its_message_then_status_and_code():
    assert describe(ApiError(409, "gate_not_pending", "the gate is approved.")) == \
        "the gate is approved (409 gate_not_pending)"
    assert describe(ApiError(0, "unreachable", "cannot reach the Baton API at http://x")) == \
        "cannot reach the Baton API at http://x"


# --------------------------------------------------------------------------- the tasks file


def parse(text: str) -> dict[str, Any]:
    stream = io.StringIO(text)
    stream.name = "tasks.yaml"
    return parse_tasks_file(load_document(stream), "tasks.yaml")


def test_a_tasks_file_is_a_list_or_a_mapping_with_run_fields():
    assert parse("- title: a\n  priority: 7\n- b\n") == {"tasks": [{"title": "a", "priority": 7}, {"title": "b"}]}
    run = parse("title: sprint\nstages: dev,qa\nmax_iterations: 2\ndeploy_gate: false\n"
                "tasks:\n  - {title: a, description: d}\n")
    assert run == {"title": "sprint", "stages": ["dev", "qa"], "max_iterations": 2, "deploy_gate": False,
                   "tasks": [{"title": "a", "description": "d"}]}
    assert parse('[{"title": "from json"}]') == {"tasks": [{"title": "from json"}]}


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("42\n", "must be a list of tasks"),
    ("[]\n", "non-empty list"),
    ("- title: ''\n", "task 1 needs a non-empty title"),
    ("- 3\n", "task 1 must be a mapping"),
    ("- title: a\n  priority: high\n", "priority must be a whole number"),
    ("- title: a\n  priority: true\n", "priority must be a whole number"),
    ("- title: a\n  description: [x]\n", "description must be text"),
    ("- title: a\n  stage: qa\n", "unknown field(s) stage"),
    ("tasks: [a]\nowner: me\n", "unknown field(s) owner"),
    ("tasks: [a]\nstages: [qa, dev]\n", "pipeline order"),
    ("tasks: [a]\nstages: [deploy]\n", "unknown stage(s) deploy"),
    ("tasks: [a]\nparallelism: 0\n", "parallelism must be a whole number"),
    ("tasks: [a]\ndeploy_gate: maybe\n", "deploy_gate must be true or false"),
    ("- title: a\n  - b\n", "is not valid YAML or JSON"),
])
def test_a_bad_tasks_file_is_refused_with_the_reason(text, message):
    with pytest.raises(CliError) as refused:
        parse(text)
    assert refused.value.exit_code == ExitCode.USAGE
    assert refused.value.message.startswith("tasks.yaml: ") and message in refused.value.message


# --------------------------------------------------------------------------- run watch


def a_run(status: str, by_stage: dict[str, int], total: int, **extra: Any) -> dict[str, Any]:
    by_status = {"done": by_stage.get("complete", 0), "queued": total - by_stage.get("complete", 0)}
    return {"id": "run_1", "status": status, "stages": ["dev", "qa"], **extra,
            "progress": {"total": total, "by_stage": by_stage, "by_status": by_status,
                         "percent_complete": 100.0 * by_stage.get("complete", 0) / total}}


def test_stage_bars_count_the_tasks_past_each_stage():
    bars = stage_bars(a_run("running", {"dev": 1, "qa": 1, "complete": 1}, 3))
    assert [(b.stage, b.done, b.total, b.here) for b in bars] == [
        ("dev", 2, 3, 1), ("qa", 1, 3, 1), ("complete", 1, 3, 0)]
    released = stage_bars(a_run("running", {"cicd": 1, "complete": 2}, 3, release_task_id="task_r"))
    assert [b.stage for b in released] == ["dev", "qa", "cicd", "complete"]


def runs(*statuses: str) -> Iterator[dict[str, Any]]:
    for index, status in enumerate(statuses):
        yield a_run(status, {"dev": len(statuses) - index - 1, "complete": index}, len(statuses) - 1 or 1)


@pytest.mark.parametrize("live", [False, True])
def test_watch_polls_until_the_run_ends_and_says_how(live, capsys):
    sequence = runs("running", "running", "succeeded")
    code, last = watch(lambda: next(sequence), live=live, sleep=lambda _: None)
    assert code == ExitCode.OK and last["status"] == "succeeded"
    out = capsys.readouterr().out
    assert "succeeded" in out and "complete" in out
    failed = runs("running", "failed")
    assert watch(lambda: next(failed), live=live, sleep=lambda _: None)[0] == ExitCode.FAILED


def test_watch_stops_at_the_gate_only_when_asked(capsys):
    gated = runs("running", "awaiting_approval")
    assert watch(lambda: next(gated), until_gate=True, live=False, sleep=lambda _: None)[0] == ExitCode.OK
    waiting = runs("awaiting_approval", "awaiting_approval", "killed")
    assert watch(lambda: next(waiting), live=False, sleep=lambda _: None)[0] == ExitCode.FAILED
    assert capsys.readouterr().out.count("baton approve run_1 --gate deploy") == 1


def test_plain_watch_prints_a_line_only_when_something_changed(capsys):
    same = iter([a_run("running", {"dev": 2}, 2)] * 5 + [a_run("succeeded", {"complete": 2}, 2)])
    watch(lambda: next(same), live=False, sleep=lambda _: None)
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


def test_watch_gives_up_after_its_timeout():
    code, last = watch(lambda: a_run("running", {"dev": 1}, 1), timeout=0.01, live=False, sleep=lambda _: None)
    assert code == ExitCode.TIMED_OUT and last["status"] == "running"


# --------------------------------------------------------------------------- proofs and events


def test_the_upload_form_has_the_policy_fields_first_and_the_file_last():
    body, content_type = encode_multipart({"key": "projects/p/x", "policy": "abc"}, 'a"b.txt', "text/plain",
                                          b"hello\r\n--not-a-boundary")
    boundary = content_type.split("boundary=", 1)[1]
    parts = body.split(f"--{boundary}".encode())
    assert parts[0] == b"" and parts[-1] == b"--\r\n"
    assert b'name="key"\r\n\r\nprojects/p/x\r\n' in parts[1] and b'name="policy"' in parts[2]
    assert b'name="file"; filename="a_b.txt"' in parts[3] and b"Content-Type: text/plain" in parts[3]
    assert parts[3].endswith(b"\r\n\r\nhello\r\n--not-a-boundary\r\n")


@pytest.mark.parametrize("name, cleaned", [
    ("junit report.xml", "junit_report.xml"), ("../../etc/passwd", "_._etc_passwd"), ("ok-name_1.txt", "ok-name_1.txt"),
    ("résumé.pdf", "r_sum_.pdf"), ("...", "proof"), ("a" * 200 + ".log", "a" * 124 + ".log")])
def test_proof_file_names_are_cleaned_to_what_the_api_accepts(name, cleaned):
    assert proof_filename(name) == cleaned


def test_an_event_summary_shows_moves_then_the_rest():
    assert summarize({"from_stage": "dev", "to_stage": "qa", "from_status": "in_progress", "to_status": "queued",
                      "result": "pass", "notes": "", "details": {"x": 1}}) == \
        "dev→qa in_progress→queued result=pass"
    assert summarize({"note": "x" * 500}, width=20).endswith("…")
