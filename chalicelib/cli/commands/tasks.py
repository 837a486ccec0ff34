"""``baton task show|list|stage``."""

from __future__ import annotations

from typing import Optional

import click

from .. import output
from ..client import CliClient
from ..main import with_client
from ..output import json_option, short_time
from .runs import render_tasks

STAGES = ("dev", "qa", "sec", "docs", "cicd", "complete")
TASK_STATUSES = ("queued", "in_progress", "done", "failed", "cancelled")


@click.group(epilog="""\b
Examples:
  baton task list --run RUN_ID --status failed
  baton task show TASK_ID
  baton task stage TASK_ID --stage dev --reason "needs another pass"
""")
def task() -> None:
    """Show and list tasks; move one by hand.

    Tasks are created by runs (and by findings and bug reports); agents work them.
    """


@task.command("show")
@click.argument("task_id", metavar="TASK")
@json_option
@with_client
def show_task(client: CliClient, task_id: str, as_json: bool) -> None:
    """Show a task.

    Its stage, status and iteration, where it came from, and who holds its lease until when.
    """
    found = client.get(f"/tasks/{task_id}")
    if as_json:
        output.print_json(found)
        return
    output.details([
        ("task", found["id"]), ("title", found["title"]), ("description", found.get("description") or None),
        ("run", found["run_id"]), ("project", found["project_id"]), ("stage", found["stage"]),
        ("status", output.status_text(found["status"])), ("iteration", found.get("iteration")),
        ("priority", found.get("priority")), ("source", found.get("source")),
        ("parent task", found.get("parent_task_id")), ("claimed by", found.get("claimed_by")),
        ("lease until", short_time(found.get("lease_expires_at")) or None),
        ("created", short_time(found.get("created_at"))), ("updated", short_time(found.get("updated_at")))])


@task.command("list")
@click.option("--run", "run_id", required=True, metavar="RUN", help="Run whose tasks to list.")
@click.option("--stage", type=click.Choice(STAGES), help="Only tasks at this stage.")
@click.option("--status", type=click.Choice(TASK_STATUSES), help="Only tasks with this status.")
@click.option("--limit", type=click.IntRange(1), default=200, show_default=True, help="Show at most this many.")
@json_option
@with_client
def list_tasks(client: CliClient, run_id: str, stage: Optional[str], status: Optional[str], limit: int,
               as_json: bool) -> None:
    """List a run's tasks.

    Optionally only those at a stage (--stage) or with a status (--status).
    """
    tasks = client.collect(f"/runs/{run_id}/tasks", limit, stage=stage, status=status)
    if as_json:
        output.print_json(tasks)
        return
    render_tasks(tasks)


@task.command("stage")
@click.argument("task_id", metavar="TASK")
@click.option("--stage", required=True, type=click.Choice(STAGES), help="The stage to put the task at.")
@click.option("--reason", required=True, help="Why (kept in the run's audit events).")
@json_option
@with_client
def set_stage(client: CliClient, task_id: str, stage: str, reason: str, as_json: bool) -> None:
    """Move a task to another stage (admin, human keys).

    The task is queued again at that stage; the move and its reason are recorded as an event.
    """
    moved = client.post(f"/tasks/{task_id}/stage", {"stage": stage, "reason": reason})
    if as_json:
        output.print_json(moved)
        return
    output.line(f"Task {moved['id']} is now at {moved['stage']} ({moved['status']})", "green")
