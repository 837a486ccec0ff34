"""The ``baton`` CLI's help, without an API: every command says what it does, the root help lists the
groups by section, and the commands the issue names exist."""

from __future__ import annotations

from typing import Iterator

import click
import pytest
from click.testing import CliRunner

from chalicelib.cli import cli

NO_CONFIG_ENV = {"BATON_API_URL": None, "BATON_API_KEY": None, "BATON_CONFIG": None, "BATON_AGENT_ID": None}


def all_commands(group: click.Group = cli,
                 path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*path, name))


COMMANDS = list(all_commands())


def test_the_root_help_lists_the_groups_by_section():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for section in ("Local stack:", "Projects and runs:", "Working a task (external agents):", "Administration:"):
        assert section in result.stdout
    for name in cli.commands:
        assert f"  {name} " in result.stdout
    assert "Exit codes:" in result.stdout and "BATON_API_URL" in result.stdout
    listing = result.stdout.split("Local stack:")[1].split("Exit codes:")[0]
    assert not [line for line in listing.splitlines() if line.endswith("...")]  # no summary cut short


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help_that_says_what_it_does(path):
    command = dict(COMMANDS)[path]
    result = CliRunner().invoke(cli, [*path, "--help"], env=NO_CONFIG_ENV)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: baton {' '.join(path)}")
    summary = (command.help or "").strip().splitlines()[0]
    assert summary.endswith(".") and 10 < len(summary) <= 60, summary
    assert summary in result.stdout
    # a summary, then at least a sentence of what it does
    body = (command.help or "").strip().split("\n\n")[1:]
    assert body and body[0].strip().endswith((".", ":")), path
    assert " ".join(body[0].split()) in " ".join(result.stdout.split())


def test_commands_the_issue_names_exist():
    names = {" ".join(p) for p, _ in COMMANDS}
    for expected in ("up", "project create", "project list", "project show", "run start", "run watch", "run show",
                     "run events", "run kill", "task show", "claim", "heartbeat", "advance", "handoff write",
                     "handoff show", "proof upload", "proof list", "proof get", "approve", "roles list", "roles show",
                     "roles set", "keys create", "keys list", "keys revoke", "keys rotate"):
        assert expected in names
