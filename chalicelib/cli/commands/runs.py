"""``baton run start|list|show|watch|events|kill``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any, Optional

import click

from .. import output, watch as watching
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
Options given on the command line win over the file."""


@click.group(epilog="""\b
Examples:
  baton run start --project demo --tasks tasks.yaml --watch
  baton run watch RUN_ID --until-gate
  baton run events RUN_ID --follow
  baton run kill RUN_ID --yes
""")
def run() -> None:
    """Start, watch, inspect and kill runs.

    A run moves each of its tasks through its stages (dev → qa → sec → docs by default), then
    waits at the deploy gate for a human's approval.
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
@click.option("--watch", "then_watch", is_flag=True, help="Then watch the run until it ends (see `run watch`).")
@json_option
@with_client
def start_run(client: CliClient, project_id: str, tasks_file: IO[str], title: Optional[str], stages: Optional[str],
              max_iterations: Optional[int], parallelism: Optional[int], deploy_gate: Optional[bool],
              then_watch: bool, as_json: bool) -> None:
    """Start a run from a file of tasks.

    Reads and checks the tasks file, creates the run with its tasks, and prints the run id. The
    run starts at once: agents can claim its tasks as soon as their stage jobs are dispatched.
    """
    if then_watch and as_json:
        raise click.UsageError("--watch and --json do not mix: watch prints progress, not JSON")
    source = getattr(tasks_file, "name", "<stdin>")
    body = parse_tasks_file(load_document(tasks_file), source)
    body["title"] = title or body.get("title") or f"tasks from {Path(source).name}"[:200]
    if stages is not None:
        body["stages"] = parse_stages(stages, "--stages")
    for name, value in (("max_iterations", max_iterations), ("parallelism", parallelism),
                        ("deploy_gate", deploy_gate)):
        if value is not None:
            body[name] = value
    created = client.post(f"/projects/{project_id}/runs", body)
    if as_json:
        output.print_json(created)
        return
    gate = "then the deploy gate" if created.get("deploy_gate", True) else "no deploy gate"
    output.line(f"Started run {created['id']} in {project_id}: {len(body['tasks'])} task(s) through "
                f"{' → '.join(created.get('stages', []))}, {gate}", "green")
    if then_watch:
        _watch(client, created["id"], until_gate=False, interval=1.0)
    else:
        output.line(f"watch it: baton run watch {created['id']}", "dim")


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
        ("deploy gate", found.get("deploy_gate")), ("release task", found.get("release_task_id")),
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
        output.table(["GATE", "STATUS", "REQUESTED", "DECIDED BY", "COMMENT"],
                     [(a["gate"], output.status_text(a["status"]), short_time(a.get("requested_at")),
                       a.get("decided_by"), a.get("comment")) for a in approvals], title="Approvals")


def render_tasks(tasks: list[dict[str, Any]], title: Optional[str] = None) -> None:
    output.table(["TASK", "TITLE", "STAGE", "STATUS", "ITER", "PRIO", "SOURCE", "CLAIMED BY"],
                 [(t["id"], t["title"], t["stage"], output.status_text(t["status"]), t.get("iteration"),
                   t.get("priority"), t.get("source"), t.get("claimed_by")) for t in tasks],
                 title=title, empty="no tasks")


@run.command("watch", epilog="""\b
Exit codes: 0 the run succeeded (or reached the gate, with --until-gate); 1 it failed or was
killed; 7 --timeout passed first (the run goes on).
""")
@click.argument("run_id", metavar="RUN")
@click.option("--until-gate", is_flag=True, help="Also stop (exit 0) when the run waits for deploy approval.")
@click.option("--interval", type=click.FloatRange(0.2, 60), default=1.0, show_default=True, metavar="SECONDS",
              help="How often to poll.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), metavar="SECONDS",
              help="Give up (exit 7) if the run has not ended by then.")
@with_client
def watch_run(client: CliClient, run_id: str, until_gate: bool, interval: float, timeout: Optional[float]) -> None:
    """Follow a run's progress live until it ends.

    Shows one bar per stage of the run plus `complete` (tasks past each stage) and a status
    line, polling GET /runs/RUN. Without a terminal it prints a plain line at each change.
    """
    _watch(client, run_id, until_gate=until_gate, interval=interval, timeout=timeout)


def _watch(client: CliClient, run_id: str, *, until_gate: bool, interval: float,
           timeout: Optional[float] = None) -> None:
    code, last = watching.watch(lambda: client.get(f"/runs/{run_id}"), until_gate=until_gate, interval=interval,
                                timeout=timeout)
    if code == ExitCode.TIMED_OUT:
        output.note(f"gave up watching after {timeout:g}s: run {run_id} is still {last.get('status')}")
    else:
        style = "green" if last.get("status") == "succeeded" else ("yellow" if code == ExitCode.OK else "red")
        output.line(f"run {run_id} {last.get('status')}", style)
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
    parts = []
    for what in ("stage", "status"):
        before, after = data.get(f"from_{what}"), data.get(f"to_{what}")
        if before is not None and after is not None and before != after:
            parts.append(f"{before}→{after}")
    for name, value in data.items():
        if name.startswith(("from_", "to_")) or isinstance(value, (dict, list)) or value in (None, ""):
            continue
        parts.append(f"{name}={value}")
    summary = " ".join(parts)
    return summary if len(summary) <= width else summary[: width - 1] + "…"


def action_style(action: str) -> str:
    if any(word in action for word in ("fail", "killed", "exhausted", "reject", "cancel")):
        return "red"
    if any(word in action for word in ("succeeded", "approved", "done", "completed")):
        return "green"
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
