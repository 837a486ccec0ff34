"""``baton events tail --project P``: a project's events live, across its runs.

It polls, as the dashboard does: each round reads the project's newest runs (one request, which
also says which runs ended) and, for each run it follows, the events after the last one it printed
(``GET /runs/{id}/events?after=``, one request per run that is still going). A run started after
the tail began is followed from its first event; the runs already going when it began, from their
next event (``--from-start``: from their first). A run is let go once it has ended and its last
events were printed. No index is needed beyond those the dashboard already reads.
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional

import click

from ...domain.events import check_pattern, matches
from .. import output, watch as watching
from ..client import CliClient, with_query
from ..main import with_client
from ..output import json_option
from .runs import action_style, event_line

RUNS_PAGE = 50
EVENTS_PAGE = 200


@click.group()
def events() -> None:
    """Follow a project's events as they happen.

    Every audit event of every run of the project: what the EventBridge bus and the webhooks get.
    """


def _pattern(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        try:
            check_pattern(value)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
    return values


@events.command("tail", epilog="""\b
Examples:
  baton events tail --project shop
  baton events tail --project shop --event 'approval.*' --event run.killed
  baton events tail --project shop --json | jq .action

With --json, events print as JSON Lines: {run_id, seq, at, actor, action, entity, data}.
""")
@click.option("--project", "-p", "project_id", required=True, metavar="PROJECT", help="The project whose runs it follows.")
@click.option("--event", "-e", "patterns", multiple=True, metavar="PATTERN", callback=_pattern,
              help="Only events matching: approval.requested, run.*, ... Repeatable (default: every event).")
@click.option("--from-start", is_flag=True, help="Print the events the runs going now already have, too.")
@click.option("--interval", type=click.FloatRange(0.2, 60), default=1.5, show_default=True, metavar="SECONDS",
              help="How often it polls.")
@click.option("--count", type=click.IntRange(1), default=None, metavar="N", help="Stop after N events.")
@click.option("--duration", type=click.FloatRange(0.1), default=None, metavar="SECONDS",
              help="Stop after this long (default: until Ctrl-C).")
@json_option
@with_client
def tail(client: CliClient, project_id: str, patterns: tuple[str, ...], from_start: bool, interval: float,
         count: Optional[int], duration: Optional[float], as_json: bool) -> None:
    """Print a project's events live, across its runs.

    Follows the runs going now from their next event and every run started meanwhile from its
    first, one line per event (the run, then as `baton run events`), until Ctrl-C.
    """
    follower = Follower(client, project_id, patterns)
    follower.start(from_start)
    deadline = None if duration is None else time.monotonic() + duration
    printed = 0
    while True:
        for event in follower.poll():
            if as_json:
                click.echo(json.dumps(event, ensure_ascii=False))
            else:
                output.line(f"{event['run_id']}  {event_line(event)}", action_style(event.get("action", "")))
            printed += 1
            if count is not None and printed >= count:
                return
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))


class Follower:
    """Which runs of the project it follows, and the last event printed of each."""

    def __init__(self, client: CliClient, project_id: str, patterns: tuple[str, ...] = ()):
        self.client = client
        self.project_id = project_id
        self.patterns = patterns
        self.after: dict[str, int] = {}       # run id → the last sequence number read
        self.known: set[str] = set()          # every run seen (followed, or ended before the tail began)
        self.ending: set[str] = set()         # ended: one more read gets their last events

    def start(self, from_start: bool) -> None:
        for run in self._runs():
            self.known.add(run["id"])
            if run["status"] in watching.ENDED:
                continue
            self.after[run["id"]] = 0
            if not from_start:   # skip what is there already: read to the end, print nothing
                list(self._events(run["id"]))

    def poll(self) -> list[dict[str, Any]]:
        listed = self._runs()
        for run in listed:
            if run["id"] not in self.known:   # started since: followed from its first event
                self.known.add(run["id"])
                self.after[run["id"]] = 0
        statuses = {run["id"]: run["status"] for run in listed}
        for run_id in self.after:
            if run_id not in statuses:   # no longer among the newest: asked for by itself
                statuses[run_id] = self.client.get(f"/runs/{run_id}")["status"]
            if statuses[run_id] in watching.ENDED:
                self.ending.add(run_id)
        found: list[dict[str, Any]] = []
        for run_id in list(self.after):
            found += [e for e in self._events(run_id) if not self.patterns or matches(self.patterns, e["action"])]
            if run_id in self.ending:   # its events after it ended were just read
                del self.after[run_id]
        return sorted(found, key=lambda e: (e["at"], e["run_id"], e["seq"]))

    def _runs(self) -> list[dict[str, Any]]:
        page = self.client.get(with_query(f"/projects/{self.project_id}/runs", limit=RUNS_PAGE)) or {}
        return page.get("items", [])

    def _events(self, run_id: str) -> list[dict[str, Any]]:
        read: list[dict[str, Any]] = []
        while True:
            page = self.client.get(with_query(f"/runs/{run_id}/events", after=self.after[run_id],
                                              limit=EVENTS_PAGE)) or {}
            items = page.get("items", [])
            for event in items:
                self.after[run_id] = max(self.after[run_id], int(event["seq"]))
                read.append({"run_id": run_id, **event})
            if len(items) < EVENTS_PAGE and not page.get("next_cursor"):
                return read
