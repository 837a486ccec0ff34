"""What the CLI prints: rich tables and key/value panels for people, raw JSON for scripts.

Values from the API are printed as plain text (never as rich markup), so a task titled
``[red]x`` prints as typed. Consoles are made per call: they write to whatever ``sys.stdout`` is
then (click's test runner swaps it).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Iterable, Optional, Sequence

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

PLAIN_WIDTH = 200  # without a terminal (pipes, CI logs), wide rows beat wrapped ones


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not _isatty(stream):
        width = int(os.environ.get("COLUMNS", "0") or 0) or PLAIN_WIDTH
    return Console(file=stream, markup=False, highlight=False, emoji=False, width=width, soft_wrap=False)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def is_terminal() -> bool:
    return _isatty(sys.stdout)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--json``: print the API's JSON unchanged instead of a table (for scripts)."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the API's JSON response instead of a table (for scripts).")(function)


def text(value: Any, style: str = "") -> Text:
    if value is None or value == "":
        return Text("-", style="dim")
    if isinstance(value, bool):
        value = "yes" if value else "no"
    elif isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value) or "-"
    elif isinstance(value, dict):
        value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return Text(str(value), style=style)


STATUS_STYLES = {
    "succeeded": "green", "done": "green", "approved": "green", "stored": "green", "pass": "green",  # nosec B105  # a colour name
    "ok": "green",
    "running": "cyan", "in_progress": "cyan", "accepted": "cyan",
    "queued": "", "pending": "yellow", "created": "", "awaiting_approval": "yellow bold", "held": "yellow",
    "gate": "yellow bold", "warning": "yellow",
    "failed": "red", "killed": "red", "cancelled": "red", "rejected": "red", "fail": "red", "exhausted": "red",
    "rolled_back": "magenta",
}

# Where a task came from: people's tasks plain, the ones the pipeline made (fixes) yellow, the cicd
# role's release cyan and its rollback magenta (the colour of a rolled_back run).
SOURCE_STYLES = {
    "manual": "", "finding": "yellow", "bug_report": "yellow", "release": "cyan", "rollback": "magenta",
}


def status_text(status: Optional[str]) -> Text:
    return text(status, STATUS_STYLES.get(status or "", ""))


def source_text(source: Optional[str]) -> Text:
    return text(source, SOURCE_STYLES.get(source or "", ""))


def task_status_text(task: dict[str, Any]) -> Text:
    """A task's status, ``queued (held: canary)`` while its run's canary holds it back."""
    if task.get("held") and task.get("status") == "queued":
        return text(f"queued (held: {task['held']})", STATUS_STYLES["held"])
    return status_text(task.get("status"))


def canary_badge(task: dict[str, Any]) -> Text:
    """``canary`` for a task of its run's canary (it goes first), else nothing."""
    return Text("canary", style="yellow") if task.get("canary") else Text("")


def usd(amount: Any) -> str:
    """``$25.00``, ``$0.0123``: cents, or four decimals below $10 when cents would hide something;
    ``-`` when there is no amount."""
    if amount is None:
        return "-"
    value = float(amount)
    return f"${value:,.2f}" if abs(value) >= 10 or round(value, 2) == value else f"${value:,.4f}"


def count(amount: Any) -> str:
    """``1,234,567``; ``-`` when there is no amount."""
    return "-" if amount is None else f"{int(amount):,}"


def duration(seconds: Any) -> str:
    """``42.0s``, ``3m 05s``, ``2h 03m``."""
    if seconds is None:
        return "-"
    value = float(seconds)
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def short_time(value: Optional[str]) -> str:
    """``2025-11-21T05:07:01.123456Z`` → ``2025-11-21 05:07:01`` (UTC, as the API gives it)."""
    if not value:
        return ""
    return value.replace("T", " ")[:19]


# Columns that hold ids: never wrapped or cut, so they can be copied from the table.
ID_COLUMNS = frozenset({"ID", "RUN", "TASK", "PROOF", "HANDOFF", "KEY ID", "DIGEST", "CREATED", "UPLOADED"})


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: Optional[str] = None,
          empty: str = "nothing to show") -> None:
    rows = [[cell if isinstance(cell, Text) else text(cell) for cell in row] for row in rows]
    out = console()
    if not rows:
        out.print(Text(empty, style="dim"))
        return
    grid = Table(title=title, title_justify="left", header_style="bold", show_edge=False, pad_edge=False)
    for index, name in enumerate(columns):
        if name in ID_COLUMNS:
            widest = max([len(name)] + [row[index].cell_len for row in rows])
            grid.add_column(name, no_wrap=True, min_width=widest)
        else:
            grid.add_column(name, overflow="fold")
    for row in rows:
        grid.add_row(*row)
    out.print(grid)


def details(pairs: Iterable[tuple[str, Any]], *, title: Optional[str] = None) -> None:
    """``name  value`` lines, names aligned; values that are None are left out, and the lines of
    a multi-line value are indented under its first."""
    rows = [(name, value if isinstance(value, Text) else text(value)) for name, value in pairs if value is not None]
    out = console()
    if title:
        out.print(Text(title, style="bold"), soft_wrap=True)
    width = max((len(name) for name, _ in rows), default=0)
    for name, value in rows:
        rendered = Text(name.ljust(width + 2), style="bold")
        for index, part in enumerate(value.split("\n")):
            if index:
                rendered.append("\n" + " " * (width + 2))
            rendered.append_text(part)
        out.print(rendered, soft_wrap=True)


def line(message: str, style: str = "") -> None:
    """One line of text, never wrapped."""
    console().print(Text(message, style=style), soft_wrap=True)


def blank() -> None:
    console().print()


def note(message: str) -> None:
    """A hint or warning for the person at the terminal: stderr, so stdout stays parseable."""
    click.secho(message, err=True, fg="yellow")


def error(message: str) -> None:
    """``baton: <message>`` in red on stderr, on one line however long (never wrapped)."""
    click.secho(f"baton: {message}", err=True, fg="red")

