"""``baton run watch``: a run's progress, polled until it ends.

On a terminal: a status line and one bar per stage of the run plus ``complete`` (rich), the gate
the run waits at with what it is asked about, its canary, and for a small run a table of its tasks
(``canary`` badge, ``held: canary``). Elsewhere (a pipe, a CI log): one plain line each time
something changed, and the gate's summary when one opens.

Besides the run (read every ``interval``), the view reads, when given ``Extras``: the run's gates
once each time one opens, its tasks (small runs only: when the run's progress moved, else every
``every`` seconds) and its usage (cost, budget) every ``every`` seconds at most.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from rich.console import Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from ..agent.client import ApiError
from . import output
from .errors import ExitCode

ENDED = frozenset({"succeeded", "failed", "killed", "rolled_back"})
GATE = "awaiting_approval"
GATES = ("canary", "deploy", "budget")
TASK_TABLE_LIMIT = 12     # a run with more tasks shows no task table (and its tasks are not read)
EXTRAS_EVERY = 5.0        # seconds between two reads of the tasks or the usage, at most
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


def gate_of(run: dict[str, Any]) -> str:
    """The gate a run ``awaiting_approval`` waits at (a server that names none has only ``deploy``)."""
    return str(run.get("gate") or "deploy")


def status_line(run: dict[str, Any], usage: Optional[dict[str, Any]] = None) -> str:
    progress = run.get("progress") or {}
    by_status = progress.get("by_status") or {}
    counts = " · ".join(f"{by_status[s]} {s.replace('_', ' ')}" for s in STATUS_ORDER if by_status.get(s))
    percent = float(progress.get("percent_complete") or 0.0)
    status = str(run.get("status"))
    if status == GATE:
        status = f"{status} ({gate_of(run)} gate)"
    return (f"run {run.get('id')} {status} · {percent:.0f}% of {progress.get('total', 0)} tasks"
            + (f" · {counts}" if counts else "") + (f" · {cost_line(usage)}" if usage else ""))


def cost_line(usage: dict[str, Any]) -> str:
    """``cost $0.4200`` and, with a budget, ``· budget 84% warning``, from GET /runs/{id}/usage."""
    total = usage.get("total") or {}
    budget = usage.get("budget") or {}
    line = f"cost {output.usd(total.get('cost_usd') or 0)}"
    if budget.get("max_cost_usd") is not None or budget.get("max_tokens") is not None:
        line += f" · budget {float(budget.get('used_fraction') or 0):.0%} {budget.get('state', 'ok')}"
    return line


def canary_line(run: dict[str, Any], tasks: Optional[list[dict[str, Any]]] = None) -> Optional[str]:
    """Where the run's canary is (None without one); with the tasks, how many went first and are held."""
    if not run.get("canary"):
        return None
    state = run.get("canary_state")
    counts = ""
    if tasks is not None:
        first = [t for t in tasks if t.get("canary")]
        done = sum(1 for t in first if t.get("status") in ("done", "failed", "cancelled"))
        held = sum(1 for t in tasks if t.get("held"))
        counts = f": {done}/{len(first)} canary task(s) ended, {held} held"
    if state == "running":
        return f"canary running{counts} (the rest waits for the canary gate)"
    if state == "gate":
        return f"canary ended{counts}"
    if state == "approved":
        return "canary approved: the held tasks were released"
    if state == "rejected":
        return "canary rejected: the held tasks were cancelled"
    if state == "ended":
        return "canary: every task was in the canary (no canary gate)"
    return f"canary {state or 'configured'}{counts}"


def gate_summary(gate: str, summary: Optional[dict[str, Any]]) -> str:
    """What a gate is asked about, in one line (``summary`` of GET /runs/{id}/approvals)."""
    summary = summary or {}
    if gate == "canary" and "tasks" in summary:
        rate, limit = summary.get("failure_rate"), summary.get("max_failure_rate")
        line = (f"{summary.get('tasks', 0)} canary task(s): {summary.get('passed', 0)} passed, "
                f"{summary.get('failed', 0)} failed, {summary.get('loop_backs', 0)} loop-back(s), "
                f"{summary.get('fix_tasks', 0)} fix task(s); failure rate {float(rate or 0):.0%}")
        if limit is not None:
            line += f" (max {float(limit):.0%}{', exceeded' if summary.get('exceeded') else ''})"
        return line + f"; cost {output.usd(summary.get('cost_usd') or 0)}"
    if gate == "budget" and "used_fraction" in summary:
        ceilings = [part for part in (
            None if summary.get("max_cost_usd") is None else output.usd(summary["max_cost_usd"]),
            None if summary.get("max_tokens") is None else f"{output.count(summary['max_tokens'])} tokens") if part]
        return (f"used {float(summary.get('used_fraction') or 0):.0%} of the budget "
                f"({', '.join(ceilings) or 'no ceiling'}): {summary.get('state', '-')}")
    return ", ".join(f"{k}={v}" for k, v in summary.items())


def pending_gate(run: dict[str, Any], approvals: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The approval the run waits at, if it waits and the list has it pending."""
    if run.get("status") != GATE:
        return None
    gate = gate_of(run)
    return next((a for a in approvals if a.get("gate") == gate and a.get("status") == "pending"), None)


def gate_lines(run: dict[str, Any], approval: Optional[dict[str, Any]]) -> list[tuple[str, str]]:
    """(line, style) about the gate the run waits at: what it is asked, the warning, the deadline."""
    if run.get("status") != GATE:
        return []
    gate = gate_of(run)
    summary = (approval or {}).get("summary") or {}
    described = gate_summary(gate, summary)
    lines = [(f"{gate} gate pending" + (f": {described}" if described else ""), "yellow bold")]
    if summary.get("warning"):
        lines.append((f"warning: {summary['warning']}", "red"))
    if approval and approval.get("decide_by"):
        rejects = approval.get("on_timeout", "reject") == "reject" or summary.get("exceeded")
        lines.append((f"if no one decides by {output.short_time(approval['decide_by'])} UTC, the gate is "
                      f"{'rejected' if rejects else 'approved'} (on_timeout)", "yellow"))
    return lines


def plain_line(run: dict[str, Any], usage: Optional[dict[str, Any]] = None,
               tasks: Optional[list[dict[str, Any]]] = None) -> str:
    bars = "  ".join(f"{b.stage} {b.done}/{b.total}" for b in stage_bars(run))
    canary = canary_line(run, tasks) if run.get("canary_state") in ("running", "gate") else None
    return f"{time.strftime('%H:%M:%S')} {status_line(run, usage)} | {bars}" + (f" | {canary}" if canary else "")


def task_grid(tasks: list[dict[str, Any]]) -> Table:
    """The tasks of a small run: title, the canary badge, stage, status (``held: canary``), iteration."""
    grid = Table(header_style="bold", show_edge=False, pad_edge=False, box=None)
    for name in ("TASK", "", "STAGE", "STATUS", "ITER", "SOURCE"):
        grid.add_column(name, overflow="ellipsis", no_wrap=True, max_width=48 if name == "TASK" else None)
    for task in tasks:
        grid.add_row(output.text(task.get("title")), output.canary_badge(task), output.text(task.get("stage")),
                     output.task_status_text(task), output.text(task.get("iteration")),
                     output.source_text(task.get("source")))
    return grid


@dataclass
class Extras:
    """What the view reads besides the run, each only if given: the run's gates
    (GET /runs/{id}/approvals), its tasks (GET /runs/{id}/tasks) and its usage (GET /runs/{id}/usage)."""

    approvals: Optional[Callable[[], list[dict[str, Any]]]] = None
    tasks: Optional[Callable[[], list[dict[str, Any]]]] = None
    usage: Optional[Callable[[], dict[str, Any]]] = None
    every: float = EXTRAS_EVERY
    clock: Callable[[], float] = time.monotonic


def api_extras(client: Any, run_id: str, every: float = EXTRAS_EVERY) -> Extras:
    """The extras of a run, read from the API with ``client`` (a ``CliClient``)."""
    return Extras(approvals=lambda: (client.get(f"/runs/{run_id}/approvals") or {}).get("items", []),
                  tasks=lambda: client.collect(f"/runs/{run_id}/tasks", TASK_TABLE_LIMIT),
                  usage=lambda: client.get(f"/runs/{run_id}/usage") or {}, every=every)


@dataclass
class View:
    """What the view last read besides the run, and when."""

    extras: Extras
    tasks: Optional[list[dict[str, Any]]] = None
    usage: Optional[dict[str, Any]] = None
    approval: Optional[dict[str, Any]] = None
    gate_read: Optional[tuple[str, str]] = None      # (status, gate) the approvals were read for
    tasks_key: Any = None
    tasks_at: Optional[float] = None
    usage_at: Optional[float] = None
    off: set[str] = field(default_factory=set)       # extras the API refused (a 4xx): not read again

    def refresh(self, run: dict[str, Any]) -> None:
        now = self.extras.clock()
        total = int((run.get("progress") or {}).get("total") or 0)
        key = (run.get("status"), run.get("gate"), run.get("canary_state"), repr(run.get("progress")))
        if self.extras.tasks and total <= TASK_TABLE_LIMIT and (
                key != self.tasks_key or self.tasks_at is None or now - self.tasks_at >= self.extras.every):
            self.tasks = self._read("tasks", self.extras.tasks, self.tasks)
            self.tasks_key, self.tasks_at = key, now
        elif total > TASK_TABLE_LIMIT:
            self.tasks = None
        if self.extras.usage and (self.usage_at is None or now - self.usage_at >= self.extras.every):
            self.usage = self._read("usage", self.extras.usage, self.usage)
            self.usage_at = now
        opened = (str(run.get("status")), gate_of(run))
        if run.get("status") != GATE:
            self.approval, self.gate_read = None, None
        elif self.extras.approvals and opened != self.gate_read:
            approvals = self._read("approvals", self.extras.approvals, None)
            self.approval = pending_gate(run, approvals or [])
            self.gate_read = opened if approvals is not None else None

    def _read(self, name: str, read: Callable[[], Any], last: Any) -> Any:
        if name in self.off:
            return last
        try:
            return read()
        except ApiError as error:
            if 400 <= error.status < 500:
                self.off.add(name)   # an older server (404) or a key without the right (403)
            return last

    def renderables(self, run: dict[str, Any]) -> list[RenderableType]:
        rendered: list[RenderableType] = []
        canary = canary_line(run, self.tasks)
        if canary:
            rendered.append(Text(canary, style="yellow" if run.get("canary_state") in ("running", "gate") else "dim"))
        rendered.extend(Text(line, style=style) for line, style in gate_lines(run, self.approval))
        return rendered


class RunProgress(Progress):
    """A status line, the canary and gate lines, the stage bars, and the small run's tasks."""

    def __init__(self, *columns: Any, **kwargs: Any):
        self.status = Text("")                        # set before Progress renders them the first time
        self.above: list[RenderableType] = []
        self.below: Optional[RenderableType] = None
        super().__init__(*columns, **kwargs)

    def get_renderables(self):  # type: ignore[override]
        yield Group(self.status, *self.above)
        yield self.make_tasks_table(self.tasks)
        if self.below is not None:
            yield self.below


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
          sleep: Callable[[float], None] = time.sleep, extras: Optional[Extras] = None) -> tuple[int, dict[str, Any]]:
    """Poll ``fetch`` (the run) every ``interval`` seconds until it ends, or ``timeout`` seconds
    have passed; the exit code and the last run read. ``extras`` adds the gates, tasks and usage."""
    live = output.is_terminal() if live is None else live
    deadline = None if timeout is None else time.monotonic() + timeout
    view = View(extras or Extras())
    hinted: set[str] = set()   # each gate's hint once per time it opens

    def finished(run: dict[str, Any]) -> Optional[int]:
        code = outcome(run, until_gate)
        if code is None and deadline is not None and time.monotonic() >= deadline:
            return ExitCode.TIMED_OUT
        return code

    def hint_once(run: dict[str, Any]) -> Optional[str]:
        if run.get("status") != GATE:
            hinted.clear()
            return None
        if gate_of(run) in hinted:
            return None
        hinted.add(gate_of(run))
        return approval_hint(run)

    if live:
        columns = (TextColumn("{task.description:>9}"), BarColumn(bar_width=40), MofNCompleteColumn(),
                   TextColumn("{task.fields[here]}", style="dim"))
        with RunProgress(*columns, console=output.console(), auto_refresh=False, transient=False) as bars:
            ids: dict[str, Any] = {}
            while True:
                run = fetch()
                view.refresh(run)
                bars.status = Text(status_line(run, view.usage),
                                   style=output.STATUS_STYLES.get(run.get("status", ""), ""))
                bars.above = view.renderables(run)
                bars.below = task_grid(view.tasks) if view.tasks else None
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
                hint = hint_once(run)
                if hint:
                    bars.console.print(Text(hint, style="yellow"))
                sleep(interval)
    last = ""
    shown_gate: Optional[tuple[str, Any]] = None
    while True:
        run = fetch()
        view.refresh(run)
        current = plain_line(run, view.usage, view.tasks)
        if current.split(" ", 1)[1] != last:
            output.line(current)
            last = current.split(" ", 1)[1]
        if view.approval is None:
            shown_gate = None if run.get("status") != GATE else shown_gate
        elif (gate_of(run), view.approval.get("requested_at")) != shown_gate:
            shown_gate = (gate_of(run), view.approval.get("requested_at"))
            for line, style in gate_lines(run, view.approval):
                output.line(line, style)
        code = finished(run)
        if code is not None:
            return code, run
        hint = hint_once(run)
        if hint:
            output.line(hint)
        sleep(interval)


def approval_hint(run: dict[str, Any]) -> str:
    run_id, gate = run.get("id"), gate_of(run)
    if gate == "canary":
        return (f"waiting for a human to decide the canary gate: baton approve {run_id} --gate canary starts the "
                f"held tasks, baton reject {run_id} --gate canary cancels them (Ctrl-C stops watching; the run goes on)")
    if gate == "budget":
        return (f"the run used its budget: baton approve {run_id} --gate budget --raise-cost USD (or --raise-tokens "
                f"N) lets it go on, baton reject {run_id} --gate budget ends it (Ctrl-C stops watching)")
    return (f"waiting for a human to approve the {gate} gate: baton approve {run_id} --gate {gate} "
            "(Ctrl-C stops watching; the run goes on)")
