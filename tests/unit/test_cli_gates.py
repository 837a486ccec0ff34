"""The CLI's gates and budgets, without a server: ``run start --canary/--max-*``, ``approve``/``reject``
at the canary, deploy and budget gates, ``run usage``, ``run rollback``, the live view's gate, canary,
tasks and cost, and ``demo --canary``. A fake client stands in for the API: it records every request
and answers from a table (or raises the ``ApiError`` a refusing API would)."""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Callable, Iterator, Optional

import pytest
from click.testing import CliRunner, Result

from chalicelib.agent.client import ApiError
from chalicelib.cli import output, watch as watching
from chalicelib.cli.errors import ExitCode
from chalicelib.cli.main import cli

ENV = {"BATON_API_URL": "http://baton.test", "BATON_API_KEY": "bt_test", "BATON_CONFIG": None, "COLUMNS": "200"}
RUN_ID = "run_01TEST"

Answer = Any   # a value, an ApiError to raise, a list (one item per call, the last repeated) or a callable(body)


class FakeApi:
    """The ``CliClient`` the commands get: ``answers[(METHOD, path)]`` (path without its query)."""

    base_url = "http://baton.test"

    def __init__(self, answers: Optional[dict[tuple[str, str], Answer]] = None):
        self.answers: dict[tuple[str, str], Answer] = dict(answers or {})
        self.calls: list[tuple[str, str, Any]] = []

    def _answer(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path, body))
        key = (method, path.split("?", 1)[0])
        if key not in self.answers:
            raise ApiError(404, "not_found", f"no fake answer for {method} {path}")
        answer = self.answers[key]
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, ApiError):
            raise answer
        return answer(body) if callable(answer) else answer

    def get(self, path: str) -> Any:
        return self._answer("GET", path)

    def post(self, path: str, body: Any = None, headers: Optional[dict[str, str]] = None) -> Any:
        return self._answer("POST", path, body if body is not None else {})

    def delete(self, path: str) -> Any:
        return self._answer("DELETE", path)

    def collect(self, path: str, limit: Optional[int] = None, **params: Any) -> list[dict[str, Any]]:
        page = self._answer("GET", path)
        return (page or {}).get("items", []) if isinstance(page, dict) else list(page)

    def sent(self, method: str, path: str) -> list[Any]:
        """The bodies of the requests ``method path`` (query ignored), in order."""
        return [body for m, p, body in self.calls if m == method and p.split("?", 1)[0] == path]


@pytest.fixture
def api(monkeypatch) -> FakeApi:
    fake = FakeApi()
    monkeypatch.setattr(sys.modules["chalicelib.cli.main"], "CliClient", lambda *args, **kwargs: fake)
    return fake


def baton(*args: str, input: Optional[str] = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=ENV, input=input)


def a_run(status: str = "running", **extra: Any) -> dict[str, Any]:
    return {"id": RUN_ID, "project_id": "demo", "title": "sprint", "status": status, "stages": ["dev", "qa"],
            "deploy_gate": True, "created_at": "2026-01-01T00:00:00Z", "created_by": "admin:me",
            "updated_at": "2026-01-01T00:00:01Z",
            "progress": {"total": 3, "by_stage": {"dev": 2, "complete": 1}, "by_status": {"queued": 2, "done": 1},
                         "percent_complete": 33.3}, **extra}


CANARY_SUMMARY = {"tasks": 2, "passed": 1, "failed": 1, "loop_backs": 2, "fix_tasks": 1, "cost_usd": 0.4215,
                  "failure_rate": 0.5, "max_failure_rate": 0.2, "exceeded": True,
                  "warning": "50% of the canary tasks failed or looped back, more than max_failure_rate 20%: the "
                             "rest starts only if a person approves"}


def totals(tokens_in: int, tokens_out: int, cost: float, reports: int, cached: int = 0,
           wall: float = 12.5) -> dict[str, Any]:
    return {"tokens_in": tokens_in, "tokens_out": tokens_out, "tokens_cached": cached, "cost_usd": cost,
            "wall_seconds": wall, "reports": reports}


USAGE = {
    "total": totals(150_000, 30_000, 4.25, 5, cached=90_000, wall=125.0),
    "by_stage": {"qa": totals(50_000, 10_000, 1.0, 2), "dev": totals(100_000, 20_000, 3.25, 3, cached=90_000)},
    "by_role": {"qa": totals(50_000, 10_000, 1.0, 2), "dev": totals(100_000, 20_000, 3.25, 3, cached=90_000)},
    "by_agent": {"runner-a": totals(150_000, 30_000, 4.25, 5)},
    "by_model": {"claude-haiku-4-5": totals(50_000, 10_000, 0.5, 2),
                 "claude-sonnet-4-5": totals(100_000, 20_000, 3.75, 3)},
    "budget": {"max_cost_usd": 5.0, "max_tokens": 1_000_000, "used_fraction": 0.85, "state": "warning"},
}


# --------------------------------------------------------------------------- run start


@pytest.fixture
def tasks_file(tmp_path) -> str:
    path = tmp_path / "tasks.yaml"
    path.write_text("- add login\n- fix the parser\n- write docs\n")
    return str(path)


def created(body: dict[str, Any]) -> dict[str, Any]:
    """What the API answers to POST /projects/demo/runs: the run, with the defaults it fills."""
    ceilings = {"max_tasks": None, "max_fix_tasks": 50, "max_cost_usd": None, "max_tokens": None,
                **body.get("ceilings", {})}
    canary = {"min_tasks": 1, "max_failure_rate": None, "decision_timeout_seconds": None, "on_timeout": "reject",
              **body["canary"]} if "canary" in body else None
    return a_run(stages=["dev", "qa", "sec", "docs"], canary=canary, ceilings=ceilings)


def test_run_start_sends_the_canary_and_the_ceilings_given(api, tasks_file):
    api.answers[("POST", "/projects/demo/runs")] = created
    result = baton("run", "start", "-p", "demo", "--tasks", tasks_file, "--canary", "0.1", "--canary-min-tasks", "2",
                   "--canary-max-failure-rate", "20%", "--canary-timeout", "3600", "--canary-on-timeout", "approve",
                   "--max-cost", "25", "--max-tokens", "5000000", "--max-tasks", "40", "--max-fix-tasks", "5")
    assert result.exit_code == 0, result.output
    body = api.sent("POST", "/projects/demo/runs")[0]
    assert body["canary"] == {"fraction": 0.1, "min_tasks": 2, "max_failure_rate": 0.2,
                              "decision_timeout_seconds": 3600, "on_timeout": "approve"}
    assert body["ceilings"] == {"max_tasks": 40, "max_fix_tasks": 5, "max_cost_usd": 25.0, "max_tokens": 5_000_000}
    assert f"Started run {RUN_ID} in demo: 3 task(s)" in result.stdout
    assert ("canary: 10% of the tasks (at least 2) first; max failure rate 20%; approve after 3600s undecided; the "
            f"rest is held until the canary gate (baton approve {RUN_ID} --gate canary)") in result.stdout
    assert "ceilings: max $25.00, 5,000,000 tokens, 40 tasks, 5 fix tasks" in result.stdout


def test_run_start_sends_only_what_was_asked(api, tasks_file):
    api.answers[("POST", "/projects/demo/runs")] = created
    plain = baton("run", "start", "-p", "demo", "--tasks", tasks_file)
    assert plain.exit_code == 0, plain.output
    assert "canary" not in api.sent("POST", "/projects/demo/runs")[0]
    assert "ceilings" not in api.sent("POST", "/projects/demo/runs")[0]
    assert "canary:" not in plain.stdout and "ceilings:" not in plain.stdout
    percent = baton("run", "start", "-p", "demo", "--tasks", tasks_file, "--canary", "25%", "--max-cost", "2.5")
    assert percent.exit_code == 0, percent.output
    assert api.sent("POST", "/projects/demo/runs")[1]["canary"] == {"fraction": 0.25}
    assert api.sent("POST", "/projects/demo/runs")[1]["ceilings"] == {"max_cost_usd": 2.5}


def test_run_start_json_prints_the_created_run(api, tasks_file):
    api.answers[("POST", "/projects/demo/runs")] = created
    result = baton("run", "start", "-p", "demo", "--tasks", tasks_file, "--canary", "0.5", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["canary"]["fraction"] == 0.5


@pytest.mark.parametrize("args, message", [
    (["--canary-min-tasks", "2"], "give its share too"),
    (["--canary-on-timeout", "approve"], "give its share too"),
    (["--canary", "a tenth"], "is not a fraction such as 0.1 or 10%"),
    (["--canary-on-timeout", "maybe", "--canary", "0.1"], "'maybe' is not one of 'reject', 'approve'"),
    (["--max-tokens", "lots"], "'lots' is not a valid integer"),
])
def test_run_start_refuses_what_cannot_be_sent(api, tasks_file, args, message):
    result = baton("run", "start", "-p", "demo", "--tasks", tasks_file, *args)
    assert result.exit_code == ExitCode.USAGE
    assert message in result.stderr
    assert not api.calls


def test_run_start_shows_the_apis_refusal_and_its_details(api, tasks_file):
    api.answers[("POST", "/projects/demo/runs")] = ApiError(
        400, "invalid_input", "invalid body: canary.fraction", [
            {"loc": ["canary", "fraction"], "msg": "Input should be less than or equal to 0.5"}])
    result = baton("run", "start", "-p", "demo", "--tasks", tasks_file, "--canary", "0.9")
    assert result.exit_code == ExitCode.FAILED
    assert "baton: invalid body: canary.fraction (400 invalid_input)" in result.stderr
    assert "canary.fraction: Input should be less than or equal to 0.5" in result.stderr
    assert api.sent("POST", "/projects/demo/runs")[0]["canary"] == {"fraction": 0.9}   # the API decides the range


def test_run_start_shows_a_rule_violation(api, tasks_file):
    api.answers[("POST", "/projects/demo/runs")] = ApiError(
        422, "too_many_tasks", "the run would have 3 tasks, more than its max_tasks 2")
    result = baton("run", "start", "-p", "demo", "--tasks", tasks_file, "--max-tasks", "2")
    assert result.exit_code == ExitCode.FAILED
    assert "baton: the run would have 3 tasks, more than its max_tasks 2 (422 too_many_tasks)" in result.stderr


# --------------------------------------------------------------------------- approve / reject


def decided(gate: str, status: str) -> Callable[[Any], dict[str, Any]]:
    return lambda body: {"gate": gate, "status": status, "requested_at": "2026-01-01T00:00:00Z",
                         "decision": body["decision"], "comment": body["comment"], "summary": {}}


def test_approve_keeps_its_old_invocations(api):
    api.answers[("POST", f"/runs/{RUN_ID}/approvals/deploy")] = [decided("deploy", "approved"),
                                                                 decided("deploy", "rejected")]
    approved = baton("approve", RUN_ID)
    rejected = baton("approve", RUN_ID, "--gate", "deploy", "--reject", "--comment", "not clean")
    assert approved.exit_code == rejected.exit_code == 0, approved.output + rejected.output
    assert api.sent("POST", f"/runs/{RUN_ID}/approvals/deploy") == [
        {"decision": "approve", "comment": ""}, {"decision": "reject", "comment": "not clean"}]
    assert f"Gate deploy of run {RUN_ID}: approved; the release task (stage cicd) starts now" in approved.stdout
    assert f"Gate deploy of run {RUN_ID}: rejected; the run fails" in rejected.stdout


def test_approve_the_canary_gate(api):
    api.answers[("POST", f"/runs/{RUN_ID}/approvals/canary")] = decided("canary", "approved")
    result = baton("approve", RUN_ID, "--gate", "canary", "--comment", "looks right")
    assert result.exit_code == 0, result.output
    assert api.sent("POST", f"/runs/{RUN_ID}/approvals/canary") == [{"decision": "approve", "comment": "looks right"}]
    assert f"Gate canary of run {RUN_ID}: approved; the held tasks start now" in result.stdout


def test_approve_the_budget_gate_raises_it(api):
    api.answers[("POST", f"/runs/{RUN_ID}/approvals/budget")] = decided("budget", "approved")
    result = baton("approve", RUN_ID, "--gate", "budget", "--raise-cost", "10", "--raise-tokens", "250000")
    assert result.exit_code == 0, result.output
    assert api.sent("POST", f"/runs/{RUN_ID}/approvals/budget") == [
        {"decision": "approve", "comment": "", "raise_cost_usd": 10.0, "raise_tokens": 250_000}]
    assert (f"Gate budget of run {RUN_ID}: approved (+$10.00, +250,000 tokens); the run goes on with its raised "
            "budget") in result.stdout


def test_reject_is_the_counterpart_of_approve(api):
    api.answers[("POST", f"/runs/{RUN_ID}/approvals/canary")] = decided("canary", "rejected")
    api.answers[("POST", f"/runs/{RUN_ID}/approvals/deploy")] = decided("deploy", "rejected")
    canary = baton("reject", RUN_ID, "--gate", "canary", "--comment", "two loop-backs")
    deploy = baton("reject", RUN_ID)
    assert canary.exit_code == deploy.exit_code == 0, canary.output + deploy.output
    assert api.sent("POST", f"/runs/{RUN_ID}/approvals/canary") == [{"decision": "reject", "comment": "two loop-backs"}]
    assert api.sent("POST", f"/runs/{RUN_ID}/approvals/deploy") == [{"decision": "reject", "comment": ""}]
    assert "the held tasks are cancelled and the run fails" in canary.stdout
    assert f"Gate deploy of run {RUN_ID}: rejected; the run fails" in deploy.stdout


def test_approve_json_prints_the_decision(api):
    api.answers[("POST", f"/runs/{RUN_ID}/approvals/canary")] = decided("canary", "approved")
    result = baton("approve", RUN_ID, "--gate", "canary", "--json")
    assert json.loads(result.stdout)["status"] == "approved"


@pytest.mark.parametrize("error, shown", [
    (ApiError(409, "gate_not_pending", f"the canary gate of run {RUN_ID} is approved; only a pending gate can be "
                                       "decided"),
     f"baton: the canary gate of run {RUN_ID} is approved; only a pending gate can be decided (409 gate_not_pending)"),
    (ApiError(400, "raise_required", "approving the budget gate raises the budget: give raise_cost_usd or "
                                     "raise_tokens (how much more the run may use)"),
     "give raise_cost_usd or raise_tokens (how much more the run may use) (400 raise_required)"),
    (ApiError(422, "raise_too_small", f"the raise leaves run {RUN_ID} at 104% of its budget; raise it further."),
     f"baton: the raise leaves run {RUN_ID} at 104% of its budget; raise it further (422 raise_too_small)"),
])
def test_a_refused_decision_shows_the_apis_reason(api, error, shown):
    gate = "canary" if error.status == 409 else "budget"
    api.answers[("POST", f"/runs/{RUN_ID}/approvals/{gate}")] = error
    result = baton("approve", RUN_ID, "--gate", gate, *(["--raise-cost", "0.01"] if error.status == 422 else []))
    assert result.exit_code == ExitCode.FAILED
    assert shown in result.stderr
    assert not result.stdout


def test_an_unknown_gate_is_a_usage_error(api):
    result = baton("approve", RUN_ID, "--gate", "release")
    assert result.exit_code == ExitCode.USAGE and "'release' is not one of 'canary', 'deploy', 'budget'" in result.stderr
    assert not api.calls


# --------------------------------------------------------------------------- run usage


def test_run_usage_prints_tables_by_stage_role_model_and_agent_then_the_total_and_budget(api):
    api.answers[("GET", f"/runs/{RUN_ID}/usage")] = USAGE
    result = baton("run", "usage", RUN_ID)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for title in ("By stage", "By role", "By model", "By agent"):
        assert title in out
    assert out.index("By stage") < out.index("By role") < out.index("By model") < out.index("By agent")
    stage_rows = [line.split()[0] for line in out.split("By stage")[1].split("By role")[0].splitlines()
                  if line.startswith(("dev", "qa"))]
    assert stage_rows == ["dev", "qa"]   # pipeline order, not the API's
    model_rows = [line.split()[0] for line in out.split("By model")[1].splitlines() if line.startswith("claude")]
    assert model_rows == ["claude-sonnet-4-5", "claude-haiku-4-5"]   # the costliest first
    assert "100,000" in out and "$3.25" in out and "90,000" in out
    assert "tokens in 150,000 · tokens out 30,000 · cached 90,000 · cost $4.25 · wall 2m 05s · reports 5" in out
    assert "$4.25 of $5.00 · 180,000 of 1,000,000 tokens · 85% used: warning" in out


def test_run_usage_without_reports_or_ceilings(api):
    empty = totals(0, 0, 0.0, 0, wall=0.0)
    api.answers[("GET", f"/runs/{RUN_ID}/usage")] = {
        "total": empty, "by_stage": {}, "by_role": {}, "by_agent": {}, "by_model": {},
        "budget": {"max_cost_usd": None, "max_tokens": None, "used_fraction": 0.0, "state": "ok"}}
    result = baton("run", "usage", RUN_ID)
    assert result.exit_code == 0, result.output
    assert f"run {RUN_ID}: no usage reported yet" in result.stdout and "By stage" not in result.stdout
    assert "no ceiling" in result.stdout


def test_run_usage_json_prints_the_raw_answer(api):
    api.answers[("GET", f"/runs/{RUN_ID}/usage")] = USAGE
    result = baton("run", "usage", RUN_ID, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == USAGE


def test_run_usage_of_an_unknown_run(api):
    api.answers[("GET", f"/runs/{RUN_ID}/usage")] = ApiError(404, "not_found", "run not found")
    result = baton("run", "usage", RUN_ID)
    assert result.exit_code == ExitCode.NOT_FOUND and "baton: run not found (404 not_found)" in result.stderr


# --------------------------------------------------------------------------- run rollback


def test_run_rollback_creates_the_rollback_task(api):
    api.answers[("POST", f"/runs/{RUN_ID}/rollback")] = lambda body: {
        "id": "task_01ROLLBACK", "run_id": RUN_ID, "stage": "cicd", "status": "queued", "source": "rollback",
        "inputs": {"release_task_id": "task_01RELEASE", "release_commit": "abc1234"}}
    result = baton("run", "rollback", RUN_ID, "--reason", "the release broke the login page")
    assert result.exit_code == 0, result.output
    assert api.sent("POST", f"/runs/{RUN_ID}/rollback") == [{"reason": "the release broke the login page"}]
    assert (f"Rollback task task_01ROLLBACK created for run {RUN_ID} (stage cicd, source rollback): reverts release "
            "abc1234") in result.stdout
    assert "the run ends rolled_back when the task completes" in result.stdout


def test_run_rollback_needs_a_reason_and_shows_a_refusal(api):
    missing = baton("run", "rollback", RUN_ID)
    assert missing.exit_code == ExitCode.USAGE and "--reason" in missing.stderr and not api.calls
    api.answers[("POST", f"/runs/{RUN_ID}/rollback")] = ApiError(
        409, "run_not_released", f"run {RUN_ID} is running and never released; only a succeeded run whose release "
                                 "task ran can be rolled back")
    refused = baton("run", "rollback", RUN_ID, "--reason", "oops")
    assert refused.exit_code == ExitCode.FAILED
    assert "only a succeeded run whose release task ran can be rolled back (409 run_not_released)" in refused.stderr


# --------------------------------------------------------------------------- run show, run watch


def test_run_show_has_the_canary_the_gate_the_ceilings_and_the_task_badges(api):
    api.answers[("GET", f"/runs/{RUN_ID}")] = a_run(
        "awaiting_approval", gate="canary", canary={"fraction": 0.25, "min_tasks": 1, "max_failure_rate": 0.2},
        canary_state="gate", ceilings={"max_fix_tasks": 50, "max_cost_usd": 5.0, "max_tokens": None})
    api.answers[("GET", f"/runs/{RUN_ID}/tasks")] = {"items": [
        {"id": "task_a", "title": "add login", "stage": "complete", "status": "done", "canary": True,
         "source": "manual", "iteration": 1},
        {"id": "task_b", "title": "fix parser", "stage": "dev", "status": "queued", "held": "canary",
         "source": "manual", "iteration": 1}]}
    api.answers[("GET", f"/runs/{RUN_ID}/approvals")] = {"items": [
        {"gate": "canary", "status": "pending", "requested_at": "2026-01-01T00:00:00Z", "summary": CANARY_SUMMARY}]}
    result = baton("run", "show", RUN_ID)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"waiting at +the canary gate", out)
    assert "25% of the tasks (at least 1) first; max failure rate 20% · gate" in out
    assert "max $5.00, 50 fix tasks" in out
    assert "add login [canary]" in out and "queued (held: canary)" in out
    assert "2 canary task(s): 1 passed, 1 failed, 2 loop-back(s), 1 fix task(s); failure rate 50% (max 20%, exceeded)" \
        in out


def test_run_watch_says_where_it_stopped(api):
    api.answers[("GET", f"/runs/{RUN_ID}")] = a_run("awaiting_approval", gate="canary", canary=CANARY,
                                                   canary_state="gate")
    api.answers[("GET", f"/runs/{RUN_ID}/approvals")] = {"items": [
        {"gate": "canary", "status": "pending", "requested_at": "2026-01-01T00:00:00Z", "summary": CANARY_SUMMARY}]}
    api.answers[("GET", f"/runs/{RUN_ID}/tasks")] = {"items": TASKS}
    api.answers[("GET", f"/runs/{RUN_ID}/usage")] = USAGE
    result = baton("run", "watch", RUN_ID, "--until-gate")
    assert result.exit_code == 0, result.output
    assert "canary gate pending: 2 canary task(s)" in result.stdout
    assert f"run {RUN_ID} awaiting_approval at the canary gate" in result.stdout


# --------------------------------------------------------------------------- the live view


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sequence(*runs: dict[str, Any], clock: Optional[Clock] = None, step: float = 1.0) -> Callable[[], dict[str, Any]]:
    """The runs in order, one per poll (the clock moves ``step`` seconds before each after the first)."""
    items: Iterator[dict[str, Any]] = iter(runs)
    first = [True]

    def fetch() -> dict[str, Any]:
        if clock is not None and not first[0]:
            clock.now += step
        first[0] = False
        return next(items)

    return fetch


def counting(answer: Any, calls: list[str], name: str) -> Callable[[], Any]:
    def read() -> Any:
        calls.append(name)
        if isinstance(answer, ApiError):
            raise answer
        return answer
    return read


CANARY = {"fraction": 0.34, "min_tasks": 1}
TASKS = [{"title": "add login", "stage": "qa", "status": "in_progress", "canary": True, "iteration": 1,
          "source": "manual"},
         {"title": "fix parser", "stage": "dev", "status": "queued", "held": "canary", "iteration": 1,
          "source": "manual"},
         {"title": "write docs", "stage": "dev", "status": "queued", "held": "canary", "iteration": 1,
          "source": "manual"}]


def test_plain_watch_shows_the_canary_then_its_gate_with_the_summary_and_how_to_decide(capsys):
    calls: list[str] = []
    approvals = [{"gate": "canary", "status": "pending", "requested_at": "2026-01-01T00:00:00Z",
                  "summary": CANARY_SUMMARY, "decide_by": "2026-01-02T00:00:00Z", "on_timeout": "approve"}]
    extras = watching.Extras(approvals=counting(approvals, calls, "approvals"), tasks=counting(TASKS, calls, "tasks"),
                             usage=counting(USAGE, calls, "usage"))
    fetch = sequence(a_run(canary=CANARY, canary_state="running"),
                     *[a_run("awaiting_approval", gate="canary", canary=CANARY, canary_state="gate")] * 3,
                     a_run("killed", canary=CANARY, canary_state="gate"))
    code, last = watching.watch(fetch, live=False, sleep=lambda _: None, extras=extras)
    assert code == ExitCode.FAILED and last["status"] == "killed"
    out = capsys.readouterr().out
    assert "running · 33% of 3 tasks · 2 queued · 1 done · cost $4.25 · budget 85% warning" in out
    assert "canary running: 0/1 canary task(s) ended, 2 held (the rest waits for the canary gate)" in out
    assert "awaiting_approval (canary gate)" in out
    assert out.count("canary gate pending: 2 canary task(s): 1 passed, 1 failed, 2 loop-back(s), 1 fix task(s); "
                     "failure rate 50% (max 20%, exceeded); cost $0.4215") == 1
    assert "warning: 50% of the canary tasks failed or looped back" in out
    # exceeded: a timeout never approves, whatever on_timeout says
    assert "if no one decides by 2026-01-02 00:00:00 UTC, the gate is rejected (on_timeout)" in out
    assert out.count(f"baton approve {RUN_ID} --gate canary") == 1 and f"baton reject {RUN_ID} --gate canary" in out
    assert calls.count("approvals") == 1   # read once when the gate opened, not at every poll
    assert calls.count("usage") == 1       # no clock moved: never read again within `every` seconds


def test_watch_reads_the_usage_at_most_every_few_seconds():
    clock = Clock()
    calls: list[str] = []
    extras = watching.Extras(usage=counting(USAGE, calls, "usage"), every=5.0, clock=clock)
    fetch = sequence(*[a_run()] * 12, a_run("succeeded"), clock=clock, step=1.0)
    code, _ = watching.watch(fetch, live=False, sleep=lambda _: None, extras=extras)
    assert code == ExitCode.OK
    assert calls.count("usage") == 3   # at 0 s, 5 s and 10 s of 12 s


def test_watch_reads_the_tasks_of_a_small_run_only_and_drops_what_the_api_refuses(capsys):
    calls: list[str] = []
    big = a_run()
    big["progress"] = {**big["progress"], "total": watching.TASK_TABLE_LIMIT + 1}
    extras = watching.Extras(tasks=counting(TASKS, calls, "tasks"),
                             usage=counting(ApiError(404, "not_found", "no such route"), calls, "usage"), every=0)
    watching.watch(sequence(big, big, a_run("succeeded")), live=False, sleep=lambda _: None, extras=extras)
    assert calls == ["usage", "tasks"]   # the big run's tasks are never read; a 404 usage is not asked again
    assert "cost" not in capsys.readouterr().out


def test_live_watch_shows_the_gate_the_tasks_with_the_canary_badge_and_held_state(capsys):
    approvals = [{"gate": "canary", "status": "pending", "requested_at": "2026-01-01T00:00:00Z",
                  "summary": CANARY_SUMMARY}]
    extras = watching.Extras(approvals=lambda: approvals, tasks=lambda: TASKS, usage=lambda: USAGE)
    fetch = sequence(a_run("awaiting_approval", gate="canary", canary=CANARY, canary_state="gate"))
    code, _ = watching.watch(fetch, until_gate=True, live=True, sleep=lambda _: None, extras=extras)
    assert code == ExitCode.OK
    out = capsys.readouterr().out   # without a terminal, the live view prints its last frame
    assert "awaiting_approval (canary gate)" in out and "canary ended: 0/1 canary task(s) ended, 2 held" in out
    assert "canary gate pending: 2 canary task(s): 1 passed" in out
    assert "warning: 50% of the canary tasks failed or looped back" in out
    assert "queued (held: canary)" in out
    assert any("add login" in line and "canary" in line for line in out.splitlines())
    assert "cost $4.25" in out


def test_watch_until_gate_stops_at_any_gate_and_names_it_in_its_hint(capsys):
    budget = a_run("awaiting_approval", gate="budget")
    code, _ = watching.watch(sequence(budget), until_gate=True, live=False, sleep=lambda _: None)
    assert code == ExitCode.OK
    watching.watch(sequence(budget, a_run("failed")), live=False, sleep=lambda _: None)
    out = capsys.readouterr().out
    assert f"baton approve {RUN_ID} --gate budget --raise-cost USD" in out


def test_a_rolled_back_run_has_ended_and_did_not_succeed():
    assert watching.outcome(a_run("rolled_back"), until_gate=False) == ExitCode.FAILED
    assert "rolled_back" in watching.ENDED
    assert output.STATUS_STYLES["rolled_back"] and output.SOURCE_STYLES["rollback"]
    assert output.source_text("rollback").style == output.SOURCE_STYLES["rollback"]


# --------------------------------------------------------------------------- demo --canary


class Reviewer:
    """The human key's client the demo makes to decide a gate."""

    decisions: list[tuple[str, Any]] = []

    def __init__(self, base_url: str, key: str):
        assert key == "bt_reviewer"

    def post(self, path: str, body: Any) -> dict[str, Any]:
        Reviewer.decisions.append((path, body))
        return {"gate": path.rsplit("/", 1)[1], "status": "approved"}


@pytest.fixture
def demo_api(api, monkeypatch) -> FakeApi:
    """The API of a demo run: the run waits at the canary gate (if it has a canary), then at the
    deploy gate, then has succeeded."""
    import chalicelib.demo.run as demo_run
    from chalicelib.cli.commands import demo as demo_command

    def fake_run_demo(client: Any, workdir: Any, say: Callable[[str], None],
                      watch: Callable[[str, bool], dict[str, Any]], timeout: float = 110) -> dict[str, Any]:
        run = client.post(f"/projects/{demo_run.PROJECT_ID}/runs", {"title": "textkit", "tasks": demo_run.TASKS})
        at_gate = watch(run["id"], True)
        assert at_gate["status"] == "awaiting_approval" and at_gate["gate"] == "deploy"
        api.answers[("GET", f"/runs/{RUN_ID}")] = a_run("succeeded")
        return {"run": watch(run["id"], False), "tasks": TASKS, "proofs": [], "seconds": 1.0, "loop_backs": 1,
                "events": 10}

    def runs(body: dict[str, Any]) -> dict[str, Any]:
        gates = [a_run("awaiting_approval", gate="deploy")]
        if "canary" in body:
            gates.insert(0, a_run("awaiting_approval", gate="canary", canary=body["canary"], canary_state="gate"))
        api.answers[("GET", f"/runs/{RUN_ID}")] = gates
        return a_run(canary=body.get("canary"))

    api.answers.update({
        ("POST", "/projects/demo-textkit/runs"): runs,
        ("POST", "/keys"): {"id": "key_reviewer", "key": "bt_reviewer"},
        ("DELETE", "/keys/key_reviewer"): {"id": "key_reviewer"},
        ("GET", f"/runs/{RUN_ID}/approvals"): {"items": [
            {"gate": "canary", "status": "pending", "requested_at": "2026-01-01T00:00:00Z",
             "summary": {**CANARY_SUMMARY, "max_failure_rate": None, "exceeded": False, "warning": None}}]},
        ("GET", f"/runs/{RUN_ID}/tasks"): {"items": TASKS},
        ("GET", f"/runs/{RUN_ID}/usage"): USAGE,
    })
    monkeypatch.setattr(demo_run, "run_demo", fake_run_demo)
    monkeypatch.setattr(demo_command, "BatonClient", Reviewer)
    Reviewer.decisions = []
    return api


def test_demo_canary_starts_one_task_first_and_approves_the_canary_gate(demo_api, tmp_path):
    result = baton("demo", "--canary", "--workdir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert demo_api.sent("POST", "/projects/demo-textkit/runs")[0]["canary"] == {"fraction": 0.33, "min_tasks": 1}
    assert Reviewer.decisions == [(f"/runs/{RUN_ID}/approvals/canary", {
        "decision": "approve", "comment": "demo: the canary task went through every stage"})]
    assert demo_api.sent("DELETE", "/keys/key_reviewer")   # the reviewer's key is revoked after its decision
    out = result.stdout
    assert "canary gate pending: 2 canary task(s)" in out
    assert out.index("canary gate pending") < out.index("canary gate approved by a human key")
    assert "gates" in out


def test_demo_without_canary_starts_the_run_as_before(demo_api, tmp_path):
    result = baton("demo", "--workdir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "canary" not in demo_api.sent("POST", "/projects/demo-textkit/runs")[0]
    assert not Reviewer.decisions and "canary gate" not in result.stdout


def test_the_demos_canary_is_one_task_of_three():
    from chalicelib.cli.commands.demo import DEMO_CANARY
    from chalicelib.demo.run import TASKS as DEMO_TASKS
    from chalicelib.domain.canary import canary_size

    assert canary_size(len(DEMO_TASKS), DEMO_CANARY["fraction"], DEMO_CANARY["min_tasks"]) == 1


# --------------------------------------------------------------------------- amounts and durations


@pytest.mark.parametrize("amount, shown", [(25, "$25.00"), (4.25, "$4.25"), (0.4215, "$0.4215"), (0, "$0.00"),
                                           (1234.5, "$1,234.50"), (12.3456, "$12.35"), (None, "-")])
def test_amounts_show_cents_unless_cents_would_hide_something(amount, shown):
    assert output.usd(amount) == shown


@pytest.mark.parametrize("seconds, shown", [(0.25, "0.2s"), (42, "42.0s"), (125, "2m 05s"), (7380, "2h 03m")])
def test_durations_read_at_a_glance(seconds, shown):
    assert output.duration(seconds) == shown
