"""``baton run start|list|show|watch|usage|events|kill|rollback``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any, Optional

import click
from rich.text import Text

from ...domain.events import describe_data
from .. import output
from .. import watch as watching
from ..client import CliClient, with_query
from ..documents import load_document, parse_stages, parse_tasks_file
from ..errors import CliError, ExitCode
from ..main import with_client
from ..output import json_option, short_time
from .projects import render_runs

TASKS_FILE_HELP = """\b
A tasks file is YAML (or JSON): a list of tasks, or a mapping that also sets the run's fields.
  - title: add login                      title: sprint 12
    description: OAuth with GitHub        stages: [dev, qa]
    priority: 8                           max_iterations: 2
  - fix the flaky parser                  tasks:
                                            - title: add login
Options given on the command line win over the file.

\b
A canary starts a share of the tasks first; the rest is held until a person approves the canary
gate (`baton approve RUN --gate canary`). Ceilings stop the run at the budget gate when agents
report more cost or tokens than allowed (`baton approve RUN --gate budget --raise-cost USD`).
  baton run start -p demo --tasks tasks.yaml --canary 10% --canary-max-failure-rate 0.2
  baton run start -p demo --tasks tasks.yaml --max-cost 25 --max-tokens 5000000"""


class Fraction(click.ParamType):
    """``0.1`` or ``10%``: a share, checked by the API (which knows its limits)."""

    name = "fraction"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        try:
            return float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            self.fail(f"{value!r} is not a fraction such as 0.1 or 10%", param, ctx)


FRACTION = Fraction()


@click.group(epilog="""\b
Examples:
  baton run start --project demo --tasks tasks.yaml --watch
  baton run watch RUN_ID --until-gate
  baton run events RUN_ID --follow
  baton run usage RUN_ID
  baton run kill RUN_ID --yes
  baton run rollback RUN_ID --reason "the release broke the login page"
""")
def run() -> None:
    """Start, watch, inspect and kill runs.

    A run moves each of its tasks through its stages (dev → qa → sec → docs by default), then
    waits at the deploy gate for a human's approval. With a canary, a share of its tasks goes
    first and the rest waits at the canary gate; with ceilings, it stops at the budget gate.
    """


@run.command("start", epilog=TASKS_FILE_HELP)
@click.option("--project", "-p", "project_id", required=True, metavar="PROJECT", help="Project to run in.")
@click.option("--tasks", "tasks_file", type=click.File("r"), required=True, metavar="FILE",
              help="YAML/JSON file with the tasks ('-' reads standard input).")
@click.option("--title", help="Title of the run (default: the file's title, else its name).")
@click.option("--stages", metavar="LIST", help="Comma-separated ordered subset of dev,qa,sec,docs.")
@click.option("--max-iterations", type=click.IntRange(1, 20), metavar="N",
              help="Loop-backs to dev a task may take before it fails (API default 3).")
@click.option("--parallelism", type=click.IntRange(1, 100), metavar="N",
              help="Tasks in flight at once (API default 4).")
@click.option("--deploy-gate/--no-deploy-gate", default=None,
              help="Wait for a human's approval before release (default: on).")
@click.option("--canary", "canary_fraction", type=FRACTION, metavar="FRACTION",
              help="Start this share of the tasks first (0.1 or 10%; the API allows up to 0.5) and hold the "
                   "rest until the canary gate is approved.")
@click.option("--canary-min-tasks", type=int, metavar="N", help="At least this many canary tasks (API default 1).")
@click.option("--canary-max-failure-rate", type=FRACTION, metavar="R",
              help="Above this share of canary tasks failed or looped back, the gate says so and a timeout "
                   "never approves it.")
@click.option("--canary-timeout", type=int, metavar="SECONDS",
              help="Decide the canary gate by --canary-on-timeout if no one has after this long.")
@click.option("--canary-on-timeout", type=click.Choice(["reject", "approve"]),
              help="What the canary gate's timeout decides (API default reject).")
@click.option("--max-cost", "max_cost_usd", type=float, metavar="USD",
              help="Budget in USD, as agents report it; the run stops at the budget gate when it is used.")
@click.option("--max-tokens", type=int, metavar="N", help="Budget in tokens (in + out), as agents report them.")
@click.option("--max-tasks", type=int, metavar="N", help="Most tasks the run may have, fix tasks included.")
@click.option("--max-fix-tasks", type=int, metavar="N", help="Most fix tasks (from findings) the run may make "
                                                             "(API default 50).")
@click.option("--watch", "then_watch", is_flag=True, help="Then watch the run until it ends (see `run watch`).")
@json_option
@with_client
def start_run(client: CliClient, project_id: str, tasks_file: IO[str], title: Optional[str], stages: Optional[str],
              max_iterations: Optional[int], parallelism: Optional[int], deploy_gate: Optional[bool],
              canary_fraction: Optional[float], canary_min_tasks: Optional[int],
              canary_max_failure_rate: Optional[float], canary_timeout: Optional[int],
              canary_on_timeout: Optional[str], max_cost_usd: Optional[float], max_tokens: Optional[int],
              max_tasks: Optional[int], max_fix_tasks: Optional[int], then_watch: bool, as_json: bool) -> None:
    """Start a run from a file of tasks.

    Reads and checks the tasks file, creates the run with its tasks, and prints the run id. The
    run starts at once: agents can claim its tasks as soon as their stage jobs are dispatched
    (with --canary, only the canary's share of them until the canary gate is approved).
    """
    if then_watch and as_json:
        raise click.UsageError("--watch and --json do not mix: watch prints progress, not JSON")
    canary = present(min_tasks=canary_min_tasks, max_failure_rate=canary_max_failure_rate,
                     decision_timeout_seconds=canary_timeout, on_timeout=canary_on_timeout)
    if canary and canary_fraction is None:
        raise click.UsageError("the --canary-* options shape a canary: give its share too, e.g. --canary 0.1")
    ceilings = present(max_tasks=max_tasks, max_fix_tasks=max_fix_tasks, max_cost_usd=max_cost_usd,
                       max_tokens=max_tokens)
    source = getattr(tasks_file, "name", "<stdin>")
    body = parse_tasks_file(load_document(tasks_file), source)
    body["title"] = title or body.get("title") or f"tasks from {Path(source).name}"[:200]
    if stages is not None:
        body["stages"] = parse_stages(stages, "--stages")
    for name, value in (("max_iterations", max_iterations), ("parallelism", parallelism),
                        ("deploy_gate", deploy_gate)):
        if value is not None:
            body[name] = value
    if canary_fraction is not None:
        body["canary"] = {"fraction": canary_fraction, **canary}
    if ceilings:
        body["ceilings"] = ceilings
    created = client.post(f"/projects/{project_id}/runs", body)
    if as_json:
        output.print_json(created)
        return
    gate = "then the deploy gate" if created.get("deploy_gate", True) else "no deploy gate"
    output.line(f"Started run {created['id']} in {project_id}: {len(body['tasks'])} task(s) through "
                f"{' → '.join(created.get('stages', []))}, {gate}", "green")
    if created.get("canary"):
        output.line(f"canary: {describe_canary(created['canary'])}; the rest is held until the canary gate "
                    f"(baton approve {created['id']} --gate canary)", "yellow")
    if ceilings:
        output.line(f"ceilings: {describe_ceilings(created.get('ceilings') or ceilings)}", "dim")
    if then_watch:
        _watch(client, created["id"], until_gate=False, interval=1.0)
    else:
        output.line(f"watch it: baton run watch {created['id']}", "dim")


def present(**values: Any) -> dict[str, Any]:
    """The given values (not None), by name: what the API body says only when asked."""
    return {name: value for name, value in values.items() if value is not None}


def describe_canary(canary: dict[str, Any]) -> str:
    """``10% of the tasks (at least 1) first; max failure rate 20%; on_timeout reject after 3600s``."""
    parts = [f"{float(canary.get('fraction') or 0):.0%} of the tasks (at least {canary.get('min_tasks', 1)}) first"]
    if canary.get("max_failure_rate") is not None:
        parts.append(f"max failure rate {float(canary['max_failure_rate']):.0%}")
    if canary.get("decision_timeout_seconds"):
        parts.append(f"{canary.get('on_timeout', 'reject')} after {canary['decision_timeout_seconds']}s undecided")
    return "; ".join(parts)


def describe_ceilings(ceilings: dict[str, Any]) -> str:
    """``max $25.00, 5,000,000 tokens, 50 fix tasks``; empty when nothing is capped."""
    parts = []
    if ceilings.get("max_cost_usd") is not None:
        parts.append(f"max {output.usd(ceilings['max_cost_usd'])}")
    if ceilings.get("max_tokens") is not None:
        parts.append(f"{output.count(ceilings['max_tokens'])} tokens")
    if ceilings.get("max_tasks") is not None:
        parts.append(f"{ceilings['max_tasks']} tasks")
    if ceilings.get("max_fix_tasks") is not None:
        parts.append(f"{ceilings['max_fix_tasks']} fix tasks")
    return ", ".join(parts)


@run.command("list")
@click.option("--project", "-p", "project_id", required=True, metavar="PROJECT", help="Project whose runs to list.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="Show at most this many.")
@json_option
@with_client
def list_runs(client: CliClient, project_id: str, limit: int, as_json: bool) -> None:
    """List a project's runs, newest first.

    With status, number of tasks and how far they got.
    """
    runs = client.collect(f"/projects/{project_id}/runs", limit)
    if as_json:
        output.print_json(runs)
        return
    render_runs(runs)


@run.command("show")
@click.argument("run_id", metavar="RUN")
@click.option("--tasks", "task_limit", type=click.IntRange(0), default=100, show_default=True,
              help="How many of its tasks to list (0: none).")
@json_option
@with_client
def show_run(client: CliClient, run_id: str, task_limit: int, as_json: bool) -> None:
    """Show a run in detail.

    Its settings and progress, a table of its tasks, and its approvals.
    """
    found = client.get(f"/runs/{run_id}")
    if as_json:
        output.print_json(found)
        return
    progress = found.get("progress") or {}
    output.details([
        ("run", found["id"]), ("title", found["title"]), ("project", found["project_id"]),
        ("status", output.status_text(found["status"])), ("stages", " → ".join(found.get("stages", []))),
        ("max iterations", found.get("max_iterations")), ("parallelism", found.get("parallelism")),
        ("deploy gate", found.get("deploy_gate")),
        ("waiting at", f"the {watching.gate_of(found)} gate" if found["status"] == watching.GATE else None),
        ("canary", f"{describe_canary(found['canary'])} · {found.get('canary_state') or '-'}"
                   if found.get("canary") else None),
        ("ceilings", describe_ceilings(found.get("ceilings") or {}) or None),
        ("release task", found.get("release_task_id")), ("rollback task", found.get("rollback_task_id")),
        ("progress", f"{progress.get('percent_complete', 0)}% of {progress.get('total', 0)} tasks"
                     if progress else None),
        ("by stage", {k: v for k, v in (progress.get("by_stage") or {}).items() if v} or None),
        ("by status", {k: v for k, v in (progress.get("by_status") or {}).items() if v} or None),
        ("created", f"{short_time(found.get('created_at'))} by {found.get('created_by') or '-'}"),
        ("updated", short_time(found.get("updated_at")))])
    if task_limit:
        tasks = client.collect(f"/runs/{run_id}/tasks", task_limit)
        output.blank()
        render_tasks(tasks, title="Tasks")
    approvals = (client.get(f"/runs/{run_id}/approvals") or {}).get("items", [])
    if approvals:
        output.blank()
        output.table(["GATE", "STATUS", "REQUESTED", "DECIDED BY", "COMMENT", "SUMMARY"],
                     [(a["gate"], output.status_text(a["status"]), short_time(a.get("requested_at")),
                       a.get("decided_by"), a.get("comment"), watching.gate_summary(a["gate"], a.get("summary")))
                      for a in approvals], title="Approvals")


def render_tasks(tasks: list[dict[str, Any]], title: Optional[str] = None) -> None:
    """The tasks table: a canary task's title ends with ``[canary]``; a held task is ``queued (held: canary)``."""
    output.table(["TASK", "TITLE", "STAGE", "STATUS", "ITER", "PRIO", "SOURCE", "CLAIMED BY"],
                 [(t["id"], titled(t), t["stage"], output.task_status_text(t), t.get("iteration"),
                   t.get("priority"), output.source_text(t.get("source")), t.get("claimed_by")) for t in tasks],
                 title=title, empty="no tasks")


def titled(task: dict[str, Any]) -> Text:
    title = output.text(task.get("title"))
    if task.get("canary"):
        title.append(" [canary]", style="yellow")
    return title


@run.command("watch", epilog="""\b
Exit codes: 0 the run succeeded (or reached a gate, with --until-gate); 1 it failed, was killed
or was rolled back; 7 --timeout passed first (the run goes on).
""")
@click.argument("run_id", metavar="RUN")
@click.option("--until-gate", is_flag=True,
              help="Also stop (exit 0) when the run waits at a gate (canary, deploy or budget).")
@click.option("--interval", type=click.FloatRange(0.2, 60), default=1.0, show_default=True, metavar="SECONDS",
              help="How often to poll.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), metavar="SECONDS",
              help="Give up (exit 7) if the run has not ended by then.")
@with_client
def watch_run(client: CliClient, run_id: str, until_gate: bool, interval: float, timeout: Optional[float]) -> None:
    """Follow a run's progress live until it ends.

    Shows one bar per stage of the run plus `complete` (tasks past each stage) and a status
    line with the run's cost, polling GET /runs/RUN; a pending gate with what it asks (the canary's
    outcome, the budget used); the canary; and a small run's tasks (`canary` badge, held). Without
    a terminal it prints a plain line at each change.
    """
    _watch(client, run_id, until_gate=until_gate, interval=interval, timeout=timeout)


def _watch(client: CliClient, run_id: str, *, until_gate: bool, interval: float,
           timeout: Optional[float] = None) -> None:
    code, last = watching.watch(lambda: client.get(f"/runs/{run_id}"), until_gate=until_gate, interval=interval,
                                timeout=timeout, extras=watching.api_extras(client, run_id))
    if code == ExitCode.TIMED_OUT:
        output.note(f"gave up watching after {timeout:g}s: run {run_id} is still {last.get('status')}")
    else:
        style = "green" if last.get("status") == "succeeded" else ("yellow" if code == ExitCode.OK else "red")
        at = f" at the {watching.gate_of(last)} gate" if last.get("status") == watching.GATE else ""
        output.line(f"run {run_id} {last.get('status')}{at}", style)
    click.get_current_context().exit(code)


@run.command("events", epilog="""\b
With --json, events print as JSON Lines: one object per line, {seq, at, actor, action, entity, data}.
""")
@click.argument("run_id", metavar="RUN")
@click.option("--after", type=click.IntRange(0), default=0, metavar="SEQ", help="Start after this sequence number.")
@click.option("--follow", "-f", is_flag=True, help="Keep polling for new events until the run ends (Ctrl-C stops).")
@click.option("--interval", type=click.FloatRange(0.2, 60), default=1.0, show_default=True, metavar="SECONDS",
              help="How often --follow polls.")
@json_option
@with_client
def run_events(client: CliClient, run_id: str, after: int, follow: bool, interval: float, as_json: bool) -> None:
    """Print a run's audit events in order.

    Every change to the run and its tasks is an event (who, what, when). With --follow, polls
    for new ones (after the last sequence number seen) until the run has ended.
    """
    last = after
    run_ended = False
    while True:
        page = client.get(with_query(f"/runs/{run_id}/events", after=last, limit=200)) or {}
        for event in page.get("items", []):
            last = max(last, int(event["seq"]))
            if as_json:
                click.echo(json.dumps(event, ensure_ascii=False))
            else:
                output.line(event_line(event), action_style(event.get("action", "")))
        if page.get("next_cursor"):
            continue
        if not follow or run_ended:
            return
        # Read the status after the events: once ended, one more read gets the run's last events.
        run_ended = client.get(f"/runs/{run_id}")["status"] in watching.ENDED
        if not run_ended:
            time.sleep(interval)


def event_line(event: dict[str, Any]) -> str:
    return (f"{event.get('seq', ''):>5}  {short_time(event.get('at'))}  {event.get('action', ''):<24}  "
            f"{event.get('entity', ''):<36}  {event.get('actor', '')}  {summarize(event.get('data') or {})}").rstrip()


def summarize(data: dict[str, Any], width: int = 160) -> str:
    """``dev→qa queued→in_progress result=pass`` from an event's data."""
    summary = describe_data(data)
    return summary if len(summary) <= width else summary[: width - 1] + "…"


def action_style(action: str) -> str:
    if any(word in action for word in ("fail", "killed", "exhausted", "reject", "cancel")):
        return "red"
    if any(word in action for word in ("succeeded", "approved", "done", "completed")):
        return "green"
    if "warning" in action or "rolled_back" in action:
        return "yellow"
    return ""


@run.command("kill")
@click.argument("run_id", metavar="RUN")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@with_client
def kill_run(client: CliClient, run_id: str, yes: bool, as_json: bool) -> None:
    """Kill a run.

    Its open tasks are cancelled and nothing more is dispatched. Soft: nothing is deleted, and the
    run and its events stay readable. Asks first unless --yes.
    """
    if not yes:
        try:
            click.confirm(f"Kill run {run_id}? Its open tasks will be cancelled", abort=True)
        except click.Abort:
            raise CliError("not killed (confirm, or pass --yes)", ExitCode.USAGE) from None
    killed = client.delete(f"/runs/{run_id}")
    if as_json:
        output.print_json(killed)
        return
    output.line(f"Killed run {killed['id']}: status {killed['status']}", "red")


USAGE_COLUMNS = ["TOKENS IN", "TOKENS OUT", "CACHED", "COST", "WALL", "REPORTS"]
STAGE_ORDER = ("dev", "qa", "sec", "docs", "cicd")
ROLE_ORDER = ("director", "pm", "dev", "qa", "security", "docs", "cicd")


def usage_cells(totals: dict[str, Any]) -> list[str]:
    return [output.count(totals.get("tokens_in", 0)), output.count(totals.get("tokens_out", 0)),
            output.count(totals.get("tokens_cached", 0)), output.usd(totals.get("cost_usd", 0)),
            output.duration(totals.get("wall_seconds", 0)), output.count(totals.get("reports", 0))]


def usage_rows(by: dict[str, dict[str, Any]], order: Optional[tuple[str, ...]] = None) -> list[list[Any]]:
    """One row per value: in ``order`` (pipeline order), else the costliest first."""
    if order is not None:
        names = sorted(by, key=lambda name: (order.index(name) if name in order else len(order), name))
    else:
        names = sorted(by, key=lambda name: (-float(by[name].get("cost_usd") or 0), name))
    return [[name, *usage_cells(by[name])] for name in names]


def budget_line(usage: dict[str, Any]) -> Text:
    """``budget  $1.2300 of $5.00 (25%) · 12,000 of 100,000 tokens (12%) · 25% used: ok``."""
    budget = usage.get("budget") or {}
    total = usage.get("total") or {}
    parts = []
    if budget.get("max_cost_usd") is not None:
        parts.append(f"{output.usd(total.get('cost_usd', 0))} of {output.usd(budget['max_cost_usd'])}")
    if budget.get("max_tokens") is not None:
        used = int(total.get("tokens_in", 0) or 0) + int(total.get("tokens_out", 0) or 0)
        parts.append(f"{output.count(used)} of {output.count(budget['max_tokens'])} tokens")
    if not parts:
        return Text("no ceiling (start a run with --max-cost or --max-tokens to give it one)", style="dim")
    state = str(budget.get("state") or "ok")
    line = Text(f"{' · '.join(parts)} · {float(budget.get('used_fraction') or 0):.0%} used: ")
    line.append(state, style=output.STATUS_STYLES.get(state, ""))
    return line


@run.command("usage", epilog="""\b
Tokens in are the input not read from a prompt cache; cached, the input read from one. A budget
counts cost and tokens in + out; it warns at 80% and stops the run at the budget gate at 100%.
""")
@click.argument("run_id", metavar="RUN")
@json_option
@with_client
def run_usage(client: CliClient, run_id: str, as_json: bool) -> None:
    """Show what a run's agents used, and its budget.

    Reads GET /runs/RUN/usage: tokens, cost, wall time and reports by stage, by role, by model
    and by agent, the run's total, and where it stands against its budget (ok, warning at 80%,
    exhausted at 100%).
    """
    usage = client.get(f"/runs/{run_id}/usage") or {}
    if as_json:
        output.print_json(usage)
        return
    total = usage.get("total") or {}
    if not total.get("reports"):
        output.line(f"run {run_id}: no usage reported yet", "dim")
    else:
        for title, by, order in (("By stage", "by_stage", STAGE_ORDER), ("By role", "by_role", ROLE_ORDER),
                                 ("By model", "by_model", None), ("By agent", "by_agent", None)):
            rows = usage_rows(usage.get(by) or {}, order)
            if rows:
                output.table([by[3:].upper(), *USAGE_COLUMNS], rows, title=title)
                output.blank()
    output.details([("total", " · ".join(f"{name.lower()} {cell}" for name, cell in
                                         zip(USAGE_COLUMNS, usage_cells(total)))),
                    ("budget", budget_line(usage))], title=f"run {run_id}")


@run.command("rollback", epilog="""\b
Only a run that succeeded and whose release task ran (recording outputs.release_commit) can be
rolled back, once; anything else answers 409.
""")
@click.argument("run_id", metavar="RUN")
@click.option("--reason", required=True, help="Why (kept on the task and in the audit log).")
@json_option
@with_client
def rollback_run(client: CliClient, run_id: str, reason: str, as_json: bool) -> None:
    """Roll back a run's release (human keys).

    Creates a rollback task (stage cicd, source rollback) for the cicd role, with the release
    task's outputs as its inputs. The run works again and ends rolled_back when the rollback is
    done (failed if it fails).
    """
    task = client.post(f"/runs/{run_id}/rollback", {"reason": reason})
    if as_json:
        output.print_json(task)
        return
    release = (task.get("inputs") or {}).get("release_commit")
    output.line(f"Rollback task {task['id']} created for run {run_id} (stage {task.get('stage', 'cicd')}, source "
                f"{task.get('source', 'rollback')})" + (f": reverts release {release}" if release else ""), "magenta")
    output.line(f"the run ends rolled_back when the task completes; watch it: baton run watch {run_id}", "dim")
