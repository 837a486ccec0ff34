"""``baton handoff write|show|list|accept|complete|fail``: the note one agent leaves the next."""

from __future__ import annotations

from typing import IO, Any, Optional

import click

from .. import output
from ..client import CliClient
from ..documents import bad_file, load_mapping
from ..errors import CliError, ExitCode
from ..main import with_client
from ..output import json_option, short_time

ROLES = ("director", "pm", "dev", "qa", "security", "docs", "cicd")
HANDOFF_FIELDS = ("from_role", "to_role", "summary", "work_done", "decisions", "notes_for_next", "learnings",
                  "open_questions", "resume_prompt", "confidence", "proof_ids")
HANDOFF_FILE_HELP = """\b
A handoff file (YAML or JSON) may hold every field of the contract:
  from_role: dev                 to_role: qa
  summary: Added GitHub login    confidence: high
  work_done: [{ref: a1b2c3d, description: OAuth callback}]
  decisions: [{choice: authlib, alternatives: [hand-rolled], reason: maintained}]
  notes_for_next: ...            resume_prompt: ...
  learnings: [...]               open_questions: [...]      proof_ids: [prf_...]
Options win over the file. Confidence defaults to medium.
"""


@click.group(epilog="""\b
Examples:
  baton handoff write TASK_ID --from dev --to qa --summary "login works" --confidence high
  baton handoff write TASK_ID --file handoff.yaml
  baton handoff show --task TASK_ID
  baton handoff accept HANDOFF_ID
""")
def handoff() -> None:
    """Write and read handoffs between agents.

    A handoff says what was done, decided and left open, for the next agent. It goes created →
    accepted → completed (or failed).
    """


@handoff.command("write", epilog=HANDOFF_FILE_HELP)
@click.argument("task_id", metavar="TASK")
@click.option("--file", "handoff_file", type=click.File("r"), metavar="FILE", help="YAML/JSON file with the handoff.")
@click.option("--from", "from_role", type=click.Choice(ROLES), metavar="ROLE",
              help=f"Role handing over: {', '.join(ROLES)}.")
@click.option("--to", "to_role", type=click.Choice(ROLES), metavar="ROLE", help="Role taking over (e.g. qa).")
@click.option("--summary", help="What was done, in a sentence or two.")
@click.option("--work-done", "work_done", multiple=True, metavar="REF[=DESCRIPTION]",
              help="Where the work is (commit, file, PR) and what it is. Repeatable.")
@click.option("--notes-for-next", help="What the next agent should know first.")
@click.option("--learning", "learnings", multiple=True, metavar="TEXT", help="Something learned. Repeatable.")
@click.option("--question", "open_questions", multiple=True, metavar="TEXT", help="An open question. Repeatable.")
@click.option("--resume-prompt", help="A prompt that resumes the work where it stopped.")
@click.option("--confidence", type=click.Choice(["high", "medium", "low"]), help="How sure the author is.")
@click.option("--proof", "proof_ids", multiple=True, metavar="PROOF_ID", help="A proof backing it. Repeatable.")
@json_option
@with_client
def write_handoff(client: CliClient, task_id: str, handoff_file: Optional[IO[str]], as_json: bool,
                  **options: Any) -> None:
    """Write a handoff for a task.

    Written by the agent that worked the stage, for the one that comes next. Give the fields as
    options, or a file with all of them (see below), or both.
    """
    body: dict[str, Any] = {}
    if handoff_file is not None:
        source = getattr(handoff_file, "name", "<input>")
        body = load_mapping(handoff_file, "a handoff")
        unknown = sorted(set(map(str, body)) - set(HANDOFF_FIELDS))
        if unknown:
            raise bad_file(source, f"unknown field(s) {', '.join(unknown)}; a handoff has {', '.join(HANDOFF_FIELDS)}")
    for name in ("from_role", "to_role", "summary", "notes_for_next", "resume_prompt", "confidence"):
        if options.get(name) is not None:
            body[name] = options[name]
    for name in ("learnings", "open_questions", "proof_ids"):
        if options.get(name):
            body[name] = list(options[name])
    if options.get("work_done"):
        body["work_done"] = [parse_work_done(item) for item in options["work_done"]]
    body.setdefault("confidence", "medium")
    missing = [f"--{name.replace('_role', '').replace('_', '-')}" for name in ("from_role", "to_role", "summary")
               if not body.get(name)]
    if missing:
        raise CliError(f"a handoff needs {', '.join(missing)} (as options or in --file)", ExitCode.USAGE)
    created = client.post(f"/tasks/{task_id}/handoffs", body)
    if as_json:
        output.print_json(created)
        return
    output.line(f"Wrote handoff {created['id']} on {task_id}: {created['from_role']} → {created['to_role']} "
                f"({created.get('status', 'created')})", "green")


def parse_work_done(item: str) -> dict[str, str]:
    ref, _, description = item.partition("=")
    if not ref.strip():
        raise CliError(f"--work-done {item!r}: write REF or REF=DESCRIPTION", ExitCode.USAGE)
    return {"ref": ref.strip(), "description": description.strip()}


@handoff.command("show")
@click.argument("handoff_id", metavar="[HANDOFF]", required=False)
@click.option("--task", "task_id", metavar="TASK", help="Show the task's latest handoff instead.")
@click.option("--all", "show_all", is_flag=True, help="With --task: every handoff of the task, newest first.")
@json_option
@with_client
def show_handoff(client: CliClient, handoff_id: Optional[str], task_id: Optional[str], show_all: bool,
                 as_json: bool) -> None:
    """Show a handoff in full.

    Give its id, or --task to show the task's latest handoff (--all: every one, newest first).
    """
    if bool(handoff_id) == bool(task_id):
        raise click.UsageError("give a HANDOFF id or --task TASK (one of them)")
    if handoff_id:
        found = [client.get(f"/handoffs/{handoff_id}")]
    else:
        found = client.collect(f"/tasks/{task_id}/handoffs", None if show_all else 1)
        if not found:
            raise CliError(f"task {task_id} has no handoff yet", ExitCode.NOT_FOUND)
    if as_json:
        output.print_json(found[0] if not show_all else found)
        return
    for index, item in enumerate(found):
        if index:
            output.blank()
        render_handoff(item)


def render_handoff(item: dict[str, Any]) -> None:
    output.details([
        ("handoff", item["id"]), ("task", item.get("task_id")),
        ("from → to", f"{item.get('from_role')} → {item.get('to_role')} (stage {item.get('stage')}, "
                      f"iteration {item.get('iteration')})"),
        ("status", output.status_text(item.get("status"))), ("confidence", item.get("confidence")),
        ("summary", item.get("summary")), ("notes for next", item.get("notes_for_next") or None),
        ("resume prompt", item.get("resume_prompt") or None), ("proofs", item.get("proof_ids") or None),
        ("created", f"{short_time(item.get('created_at'))} by {item.get('created_by') or '-'}")])
    for title, rows, columns in (
            ("Work done", [(w.get("ref"), w.get("description")) for w in item.get("work_done") or []],
             ["REF", "DESCRIPTION"]),
            ("Decisions", [(d.get("choice"), d.get("alternatives"), d.get("reason"))
                           for d in item.get("decisions") or []], ["CHOICE", "ALTERNATIVES", "REASON"]),
            ("Learnings", [(x,) for x in item.get("learnings") or []], ["LEARNING"]),
            ("Open questions", [(x,) for x in item.get("open_questions") or []], ["QUESTION"])):
        if rows:
            output.blank()
            output.table(columns, rows, title=title)


@handoff.command("list")
@click.option("--task", "task_id", required=True, metavar="TASK", help="Task whose handoffs to list.")
@json_option
@with_client
def list_handoffs(client: CliClient, task_id: str, as_json: bool) -> None:
    """List a task's handoffs, newest first.

    One line each: who handed over to whom, at which stage and iteration, its status and summary.
    """
    items = client.collect(f"/tasks/{task_id}/handoffs")
    if as_json:
        output.print_json(items)
        return
    output.table(["HANDOFF", "FROM", "TO", "STAGE", "ITER", "STATUS", "CONFIDENCE", "SUMMARY", "CREATED"],
                 [(h["id"], h.get("from_role"), h.get("to_role"), h.get("stage"), h.get("iteration"),
                   output.status_text(h.get("status")), h.get("confidence"), h.get("summary"),
                   short_time(h.get("created_at"))) for h in items], empty="no handoffs")


def _transition(action: str, summary: str) -> click.Command:
    @click.argument("handoff_id", metavar="HANDOFF")
    @click.option("--notes", default="", help="Why, or what to know (kept with the handoff).")
    @json_option
    @with_client
    def command(client: CliClient, handoff_id: str, notes: str, as_json: bool) -> None:
        moved = client.post(f"/handoffs/{handoff_id}/{action}", {"notes": notes} if notes else {})
        if as_json:
            output.print_json(moved)
            return
        output.line(f"Handoff {moved['id']} is {moved['status']}", "red" if action == "fail" else "green")

    command.__doc__ = summary
    return handoff.command(action)(command)


_transition("accept", "Accept a handoff.\n\nThe next agent has read it and takes the work over (created → accepted).")
_transition("complete", "Complete an accepted handoff.\n\nIts work was carried through (accepted → completed).")
_transition("fail", "Mark a handoff failed.\n\nIt could not be acted on (created or accepted → failed); say why "
                    "with --notes.")
