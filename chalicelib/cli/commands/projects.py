"""``baton project create|list|show``."""

from __future__ import annotations

from typing import Any, Optional

import click
import yaml

from .. import output
from ..client import CliClient
from ..errors import CliError, ExitCode
from ..main import with_client
from ..output import json_option, short_time


@click.group(epilog="""\b
Examples:
  baton project create demo --name Demo --repo https://github.com/example/demo.git
  baton project list
  baton project show demo
""")
def project() -> None:
    """Create, list and show projects.

    A project is a repository that runs work on; its id names it in every other command.
    """


@project.command("create")
@click.argument("project_id", metavar="ID")
@click.option("--name", help="Display name (default: the id).")
@click.option("--repo", "--repository-url", "repository_url", required=True, metavar="URL",
              help="Repository URL (https://, ssh://, git://, file://, user@host: or a path).")
@click.option("--branch", "primary_branch", default="main", show_default=True, help="Primary branch.")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE",
              help="A project setting; VALUE is read as YAML (numbers, true/false). Repeatable.")
@json_option
@with_client
def create_project(client: CliClient, project_id: str, name: Optional[str], repository_url: str,
                   primary_branch: str, settings: tuple[str, ...], as_json: bool) -> None:
    """Create a project.

    ID is a slug (lowercase letters, digits and dashes) that names the project in every other
    command. Answers 409 if the id is taken.
    """
    body = {"id": project_id, "name": name or project_id, "repository_url": repository_url,
            "primary_branch": primary_branch, "settings": parse_settings(settings)}
    created = client.post("/projects", body)
    if as_json:
        output.print_json(created)
        return
    output.line(f"Created project {created['id']} ({created['repository_url']}, branch {created['primary_branch']})",
                "green")


def parse_settings(pairs: tuple[str, ...]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--setting {pair!r}: write KEY=VALUE", ExitCode.USAGE)
        try:
            settings[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            settings[key.strip()] = raw
    return settings


@project.command("list")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="Show at most this many.")
@json_option
@with_client
def list_projects(client: CliClient, limit: int, as_json: bool) -> None:
    """List projects.

    Admin keys see every project; human and agent keys see their own.
    """
    items = client.collect("/projects", limit)
    if as_json:
        output.print_json(items)
        return
    output.table(["ID", "NAME", "REPOSITORY", "BRANCH", "CREATED"],
                 [(p["id"], p["name"], p["repository_url"], p.get("primary_branch"), short_time(p.get("created_at")))
                  for p in items], empty="no projects yet: baton project create ID --repo URL")


@project.command("show")
@click.argument("project_id", metavar="ID")
@click.option("--runs", "run_count", type=click.IntRange(0), default=10, show_default=True,
              help="How many of its latest runs to list.")
@json_option
@with_client
def show_project(client: CliClient, project_id: str, run_count: int, as_json: bool) -> None:
    """Show a project and its latest runs.

    Its repository, branch and settings, then a table of its newest runs and their progress.
    """
    found = client.get(f"/projects/{project_id}")
    if as_json:
        output.print_json(found)
        return
    output.details([("project", found["id"]), ("name", found["name"]), ("repository", found["repository_url"]),
                    ("branch", found.get("primary_branch")), ("settings", found.get("settings") or None),
                    ("created", f"{short_time(found.get('created_at'))} by {found.get('created_by') or '-'}")])
    if run_count:
        runs = client.collect(f"/projects/{project_id}/runs", run_count)
        output.blank()
        render_runs(runs, title="Latest runs")


def render_runs(runs: list[dict[str, Any]], title: Optional[str] = None) -> None:
    output.table(["RUN", "TITLE", "STATUS", "TASKS", "DONE %", "STAGES", "CREATED"],
                 [(r["id"], r["title"], output.status_text(r["status"]), (r.get("progress") or {}).get("total", "-"),
                   (r.get("progress") or {}).get("percent_complete", "-"), "→".join(r.get("stages") or []),
                   short_time(r.get("created_at"))) for r in runs],
                 title=title, empty="no runs yet: baton run start --project ID --tasks tasks.yaml")
