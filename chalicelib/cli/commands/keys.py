"""``baton keys list|create|revoke|rotate`` (admin keys only)."""

from __future__ import annotations

from typing import Any

import click

from .. import output
from ..client import CliClient
from ..errors import CliError, ExitCode
from ..main import with_client
from ..output import json_option, short_time

STORE_IT = "Store this key now: it is shown only once and cannot be read back."


@click.group(epilog="""\b
Examples:
  baton keys create --name reviewer --principal human --project demo
  baton keys create --name qa-bot --principal agent --project demo --project web
  baton keys list
  baton keys rotate KEY_ID
  baton keys revoke KEY_ID
""")
def keys() -> None:
    """Create, list, rotate and revoke API keys (admin).

    Principals: admin (everything), human (its projects; decides approvals), agent (claims and
    works tasks of its projects).
    """


@keys.command("list")
@click.option("--revoked/--no-revoked", "show_revoked", default=False, show_default=True,
              help="Include revoked keys.")
@json_option
@with_client
def list_keys(client: CliClient, show_revoked: bool, as_json: bool) -> None:
    """List API keys.

    Shows id, name, principal and projects; never the key material, which only its creator saw.
    Revoked keys are left out unless --revoked.
    """
    items = [k for k in client.collect("/keys") if show_revoked or not k.get("revoked_at")]
    if as_json:
        output.print_json(items)
        return
    output.table(["KEY ID", "NAME", "PRINCIPAL", "PROJECTS", "CREATED", "BY", "REVOKED"],
                 [(k["id"], k["name"], k["principal"], k.get("project_ids") or "all", short_time(k.get("created_at")),
                   k.get("created_by"), short_time(k.get("revoked_at")) or None) for k in items],
                 empty="no keys")


@keys.command("create")
@click.option("--name", required=True, help="Who or what the key is for (shown in audit events).")
@click.option("--principal", required=True, type=click.Choice(["admin", "human", "agent"]), help="What it may do.")
@click.option("--project", "-p", "project_ids", multiple=True, metavar="PROJECT",
              help="A project it may act on (human and agent keys need one). Repeatable.")
@json_option
@with_client
def create_key(client: CliClient, name: str, principal: str, project_ids: tuple[str, ...], as_json: bool) -> None:
    """Create an API key and print it once.

    The key is shown only now; Baton keeps just its hash. Human and agent keys are limited to
    the projects given with --project.
    """
    if principal != "admin" and not project_ids:
        raise click.UsageError(f"a {principal} key needs at least one --project")
    created = client.post("/keys", {"name": name, "principal": principal, "project_ids": list(project_ids)})
    print_new_key(created, as_json)


def print_new_key(created: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.print_json(created)
    else:
        output.details([("key id", created["id"]), ("name", created["name"]), ("principal", created["principal"]),
                        ("projects", created.get("project_ids") or "all")])
        output.line(created["key"], "bold green")
    output.note(STORE_IT)


@keys.command("revoke")
@click.argument("key_id", metavar="KEY_ID")
@json_option
@with_client
def revoke_key(client: CliClient, key_id: str, as_json: bool) -> None:
    """Revoke an API key.

    The key stops working at once; the record stays, for the audit trail.
    """
    revoked = client.delete(f"/keys/{key_id}")
    if as_json:
        output.print_json(revoked)
        return
    output.line(f"Revoked key {revoked.get('id', key_id)} ({revoked.get('name', '')})", "yellow")


@keys.command("rotate")
@click.argument("key_id", metavar="KEY_ID")
@json_option
@with_client
def rotate_key(client: CliClient, key_id: str, as_json: bool) -> None:
    """Replace a key with a new one.

    Creates a key with the same name, principal and projects, prints it once, then revokes the
    old one. If creating it fails, the old key is left working.
    """
    old = next((k for k in client.collect("/keys") if k["id"] == key_id), None)
    if old is None:
        raise CliError(f"api key {key_id} not found", ExitCode.NOT_FOUND)
    if old.get("revoked_at"):
        raise CliError(f"api key {key_id} was revoked at {short_time(old['revoked_at'])}; create a new one instead",
                       ExitCode.FAILED)
    created = client.post("/keys", {"name": old["name"], "principal": old["principal"],
                                    "project_ids": old.get("project_ids", [])})
    print_new_key(created, as_json)
    client.delete(f"/keys/{key_id}")
    if not as_json:
        output.line(f"Revoked the old key {key_id}", "yellow")
