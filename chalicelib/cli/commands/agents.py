"""``baton claim|heartbeat|advance``: the queue protocol, for agents that run outside Baton.

An external agent loops: claim a task at its stage, heartbeat while it works (the lease expires
otherwise and the task goes to someone else), then advance it with pass or fail.
"""

from __future__ import annotations

from typing import Optional

import click

from .. import output
from ..client import CliClient
from ..errors import CliError, ExitCode
from ..main import with_client
from ..output import json_option, short_time

CLAIM_STAGES = ("dev", "qa", "sec", "docs", "cicd")


@click.command(epilog="""\b
Exit codes: 0 claimed; 6 nothing is queued at that stage (loop on it); others as for every command.

\b
Example (a shell agent):
  while true; do
    baton claim --stage qa --agent-id qa-bot-1 --project demo --json > claim.json
    case $? in 0) ;; 6) sleep 5; continue ;; *) exit 1 ;; esac
    TASK=$(jq -r .task.id claim.json); CLAIM=$(jq -r .claim.claim_id claim.json)
    ... work, calling: baton heartbeat $TASK --claim $CLAIM ...
    baton advance $TASK --claim $CLAIM --result pass --notes "all green"
  done
""")
@click.option("--stage", required=True, type=click.Choice(CLAIM_STAGES), help="The stage this agent works.")
@click.option("--agent-id", required=True, envvar="BATON_AGENT_ID", show_envvar=True, metavar="ID",
              help="Who is claiming (kept on the task and in the audit events).")
@click.option("--project", "-p", "project_id", metavar="PROJECT",
              help="Claim from this project's queue (required with an admin key).")
@click.option("--run", "run_id", metavar="RUN", help="Only claim tasks of this run.")
@click.option("--lease", "lease_seconds", type=click.IntRange(10, 3600), metavar="SECONDS",
              help="Lease length (API default 900); heartbeat before it runs out.")
@json_option
@with_client
def claim(client: CliClient, stage: str, agent_id: str, project_id: Optional[str], run_id: Optional[str],
          lease_seconds: Optional[int], as_json: bool) -> None:
    """Claim the next queued task at a stage.

    For agents that run outside Baton (role executor `external`). Prints the task and the claim id
    that heartbeat and advance need. When nothing is queued it says so on stderr and exits 6, so a
    script can wait and try again.
    """
    body = {"stage": stage, "agent_id": agent_id}
    for name, value in (("project_id", project_id), ("run_id", run_id), ("lease_seconds", lease_seconds)):
        if value is not None:
            body[name] = value
    status, claimed = client.post_status("/queue/claim", body)
    if status == 204 or not claimed:
        output.note(f"nothing queued at stage {stage}" + (f" in {project_id}" if project_id else ""))
        raise click.exceptions.Exit(ExitCode.NOTHING_TO_CLAIM)
    if as_json:
        output.print_json(claimed)
        return
    task, held = claimed["task"], claimed["claim"]
    output.details([("claimed", task["id"]), ("title", task["title"]),
                    ("description", task.get("description") or None), ("run", task["run_id"]),
                    ("stage", f"{task['stage']} (iteration {task.get('iteration', 1)})"),
                    ("claim id", held["claim_id"]), ("lease until", short_time(held["expires_at"]))])
    output.line(f"next: baton heartbeat {task['id']} --claim {held['claim_id']}   ·   "
                f"baton advance {task['id']} --claim {held['claim_id']} --result pass|fail", "dim")


@click.command()
@click.argument("task_id", metavar="TASK")
@click.option("--claim", "claim_id", required=True, metavar="CLAIM_ID", help="The claim id `baton claim` printed.")
@click.option("--lease", "lease_seconds", type=click.IntRange(10, 3600), metavar="SECONDS",
              help="New lease length from now (API default 900).")
@json_option
@with_client
def heartbeat(client: CliClient, task_id: str, claim_id: str, lease_seconds: Optional[int], as_json: bool) -> None:
    """Extend the lease on a claimed task.

    Send one well within the lease (and the role's heartbeat interval); exits 1 with the API's
    message (409) if the lease was lost, e.g. the task was cancelled or given to another agent.
    """
    body: dict[str, object] = {"claim_id": claim_id}
    if lease_seconds is not None:
        body["lease_seconds"] = lease_seconds
    answer = client.post(f"/tasks/{task_id}/heartbeat", body)
    if as_json:
        output.print_json(answer)
        return
    output.line(f"lease on {task_id} extended until {short_time(answer['expires_at'])}")


@click.command()
@click.argument("task_id", metavar="TASK")
@click.option("--claim", "claim_id", required=True, metavar="CLAIM_ID", help="The claim id `baton claim` printed.")
@click.option("--result", required=True, type=click.Choice(["pass", "fail"]),
              help="pass: on to the next stage; fail: back to dev (or failed after max iterations).")
@click.option("--notes", default="", help="What happened, for the audit events and the next agent.")
@json_option
@with_client
def advance(client: CliClient, task_id: str, claim_id: str, result: str, notes: str, as_json: bool) -> None:
    """Pass or fail your stage of a claimed task.

    The API decides where the task goes next and answers with it: the next stage, back to dev
    with the iteration counted up, done, or failed. The lease ends either way.
    """
    if len(notes) > 10_000:
        raise CliError("--notes is longer than 10000 characters", ExitCode.USAGE)
    moved = client.post(f"/tasks/{task_id}/advance", {"claim_id": claim_id, "result": result, "notes": notes})
    if as_json:
        output.print_json(moved)
        return
    where = moved["status"] if moved["status"] in ("done", "failed", "cancelled") else (
        f"stage {moved['stage']} ({moved['status']}, iteration {moved.get('iteration', 1)})")
    output.line(f"Task {moved['id']} {result}: now {where}", "green" if result == "pass" else "yellow")
