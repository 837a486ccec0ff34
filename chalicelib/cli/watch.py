"""``baton run watch``: a run's progress, polled until it ends.

On a terminal: a status line and one bar per stage of the run plus ``complete`` (rich). Elsewhere
(a pipe, a CI log): one plain line each time something changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text

from . import output
from .errors import ExitCode

ENDED = frozenset({"succeeded", "failed", "killed"})
GATE = "awaiting_approval"
STATUS_ORDER = ("queued", "in_progress", "done", "failed", "cancelled")


@dataclass(frozen=True)
class StageBar:
    """``done`` of ``total`` tasks have got past ``stage`` (reached ``complete`` for that bar);
    ``here`` are at it now."""

    stage: str
    done: int
    total: int
    here: int


def stage_bars(run: dict[str, Any]) -> list[StageBar]:
    progress = run.get("progress") or {}
    by_stage: dict[str, int] = progress.get("by_stage") or {}
    total = int(progress.get("total") or 0)
    order = list(run.get("stages") or [])
    if run.get("release_task_id") or by_stage.get("cicd"):
        order.append("cicd")  # the release task, once the deploy gate is approved
    order.append("complete")
    bars = []
    for index, stage in enumerate(order):
        here = int(by_stage.get(stage, 0))
        done = here if stage == "complete" else sum(int(by_stage.get(s, 0)) for s in order[index + 1:])
        bars.append(StageBar(stage, done, total, here if stage != "complete" else 0))
    return bars


def status_line(run: dict[str, Any]) -> str:
    progress = run.get("progress") or {}
    by_status = progress.get("by_status") or {}
    counts = " · ".join(f"{by_status[s]} {s.replace('_', ' ')}" for s in STATUS_ORDER if by_status.get(s))
    percent = float(progress.get("percent_complete") or 0.0)
    return (f"run {run.get('id')} {run.get('status')} · {percent:.0f}% of {progress.get('total', 0)} tasks"
            + (f" · {counts}" if counts else ""))


def plain_line(run: dict[str, Any]) -> str:
    bars = "  ".join(f"{b.stage} {b.done}/{b.total}" for b in stage_bars(run))
    return f"{time.strftime('%H:%M:%S')} {status_line(run)} | {bars}"


class RunProgress(Progress):
    """A status line above the stage bars."""

    status = Text("")

    def get_renderables(self):  # type: ignore[override]
        yield self.status
        yield self.make_tasks_table(self.tasks)


def outcome(run: dict[str, Any], until_gate: bool) -> Optional[int]:
    """The exit code once watching is over, or None to keep watching."""
    status = run.get("status")
    if status == "succeeded":
        return ExitCode.OK
    if status in ENDED:
        return ExitCode.FAILED
    if status == GATE and until_gate:
        return ExitCode.OK
    return None


def watch(fetch: Callable[[], dict[str, Any]], *, until_gate: bool = False, interval: float = 1.0,
          timeout: Optional[float] = None, live: Optional[bool] = None,
          sleep: Callable[[float], None] = time.sleep) -> tuple[int, dict[str, Any]]:
    """Poll ``fetch`` (the run) every ``interval`` seconds until it ends, or ``timeout`` seconds
    have passed; the exit code and the last run read."""
    live = output.is_terminal() if live is None else live
    deadline = None if timeout is None else time.monotonic() + timeout
    hinted = False

    def finished(run: dict[str, Any]) -> Optional[int]:
        code = outcome(run, until_gate)
        if code is None and deadline is not None and time.monotonic() >= deadline:
            return ExitCode.TIMED_OUT
        return code

    if live:
        columns = (TextColumn("{task.description:>9}"), BarColumn(bar_width=40), MofNCompleteColumn(),
                   TextColumn("{task.fields[here]}", style="dim"))
        with RunProgress(*columns, console=output.console(), auto_refresh=False, transient=False) as bars:
            ids: dict[str, Any] = {}
            while True:
                run = fetch()
                bars.status = Text(status_line(run), style=output.STATUS_STYLES.get(run.get("status", ""), ""))
                for bar in stage_bars(run):
                    here = f"{bar.here} here" if bar.here else ""
                    if bar.stage not in ids:
                        ids[bar.stage] = bars.add_task(bar.stage, total=max(bar.total, 1), completed=bar.done,
                                                       here=here)
                    bars.update(ids[bar.stage], total=max(bar.total, 1), completed=bar.done, here=here)
                bars.refresh()
                code = finished(run)
                if code is not None:
                    return code, run
                if run.get("status") == GATE and not hinted:
                    hinted = True
                    bars.console.print(Text(approval_hint(run), style="yellow"))
                sleep(interval)
    last = ""
    while True:
        run = fetch()
        current = plain_line(run)
        if current.split(" ", 1)[1] != last:
            output.line(current)
            last = current.split(" ", 1)[1]
        code = finished(run)
        if code is not None:
            return code, run
        if run.get("status") == GATE and not hinted:
            hinted = True
            output.line(approval_hint(run))
        sleep(interval)


def approval_hint(run: dict[str, Any]) -> str:
    return (f"waiting for a human to approve the deploy gate: baton approve {run.get('id')} --gate deploy "
            "(Ctrl-C stops watching; the run goes on)")
