"""``baton roles list|show|set|versions``: how each role's agents are told, run and checked."""

from __future__ import annotations

from typing import IO, Any, Optional

import click

from .. import output
from ..client import CliClient
from ..documents import bad_file, load_mapping
from ..main import with_client
from ..output import json_option, short_time

ROLES = ("director", "pm", "dev", "qa", "security", "docs", "cicd")
PROOF_TYPES = ("screenshot", "log", "report", "test_result", "code_diff", "other")
SPEC_FIELDS = ("prompt", "executor", "command", "image", "required_proofs", "timeout_seconds", "heartbeat_seconds")


@click.group(epilog="""\b
Examples:
  baton roles list
  baton roles show qa
  baton roles set qa --executor container --command "goose run --instructions prompt.md"
  baton roles set security --file security-role.yaml
""")
def roles() -> None:
    """List, show and change role configs.

    A role config is the prompt, executor, required proofs and limits of a role's agents. Each
    change makes a new immutable version with its own digest; a run pins the versions that were
    active when it started.
    """


@roles.command("list")
@json_option
@with_client
def list_roles(client: CliClient, as_json: bool) -> None:
    """List the active config of every role.

    Version, executor, command, required proofs, limits and digest; the prompts are left out.
    """
    items = (client.get("/roles") or {}).get("items", [])
    if as_json:
        output.print_json(items)
        return
    output.table(["ROLE", "VERSION", "EXECUTOR", "COMMAND", "REQUIRED PROOFS", "TIMEOUT", "HEARTBEAT", "DIGEST"],
                 [(r["role"], r.get("version"), r.get("executor"), r.get("command") or r.get("image"),
                   r.get("required_proofs"), f"{r.get('timeout_seconds')}s", f"{r.get('heartbeat_seconds')}s",
                   (r.get("digest") or "")[:12]) for r in items])


@roles.command("show")
@click.argument("role", type=click.Choice(ROLES), metavar="ROLE")
@json_option
@with_client
def show_role(client: CliClient, role: str, as_json: bool) -> None:
    """Show a role's active config.

    Everything the role's agents run with, the full prompt included.
    """
    found = client.get(f"/roles/{role}")
    if as_json:
        output.print_json(found)
        return
    render_role(found)


def render_role(found: dict[str, Any]) -> None:
    output.details([("role", found["role"]), ("version", found.get("version")), ("digest", found.get("digest")),
                    ("executor", found.get("executor")), ("command", found.get("command")),
                    ("image", found.get("image")), ("required proofs", found.get("required_proofs") or "none"),
                    ("timeout", f"{found.get('timeout_seconds')}s"),
                    ("heartbeat", f"{found.get('heartbeat_seconds')}s"),
                    ("created", f"{short_time(found.get('created_at'))} by {found.get('created_by') or '-'}")])
    output.blank()
    output.line("prompt:", "bold")
    output.line(found.get("prompt", ""))


@roles.command("set", epilog="""\b
A role file (YAML or JSON) holds any of: prompt, executor (container|external), command, image,
required_proofs (list), timeout_seconds, heartbeat_seconds. Fields not given keep their current
value; options win over the file.
""")
@click.argument("role", type=click.Choice(ROLES), metavar="ROLE")
@click.option("--file", "role_file", type=click.File("r"), metavar="FILE", help="YAML/JSON file with the config.")
@click.option("--prompt-file", type=click.File("r"), metavar="FILE", help="Text file with the prompt.")
@click.option("--executor", type=click.Choice(["container", "external"]),
              help="container: Baton launches the agent; external: agents claim through the API.")
@click.option("--command", metavar="CMD", help="Command a container agent runs.")
@click.option("--image", metavar="IMAGE", help="Container image of the agent.")
@click.option("--required-proof", "required_proofs", multiple=True, type=click.Choice(PROOF_TYPES), metavar="TYPE",
              help=f"Proof the stage needs before it can pass ({', '.join(PROOF_TYPES)}). Repeatable; "
                   "replaces the list.")
@click.option("--no-required-proofs", is_flag=True, help="The stage needs no proof.")
@click.option("--timeout", "timeout_seconds", type=click.IntRange(1, 86_400), metavar="SECONDS",
              help="Time limit of one stage job.")
@click.option("--heartbeat", "heartbeat_seconds", type=click.IntRange(1, 3600), metavar="SECONDS",
              help="Longest gap between heartbeats before the job counts as lost.")
@json_option
@with_client
def set_role(client: CliClient, role: str, role_file: Optional[IO[str]], prompt_file: Optional[IO[str]],
             executor: Optional[str], command: Optional[str], image: Optional[str], required_proofs: tuple[str, ...],
             no_required_proofs: bool, timeout_seconds: Optional[int], heartbeat_seconds: Optional[int],
             as_json: bool) -> None:
    """Change a role's config (admin).

    Starts from the active config, applies the file, then the options, and saves the result as
    a new active version. Runs already started keep the version they pinned.
    """
    if required_proofs and no_required_proofs:
        raise click.UsageError("--required-proof and --no-required-proofs contradict each other")
    current = client.get(f"/roles/{role}")
    spec = {name: current[name] for name in SPEC_FIELDS if name in current}
    if role_file is not None:
        source = getattr(role_file, "name", "<input>")
        given = load_mapping(role_file, "a role config")
        unknown = sorted(set(map(str, given)) - set(SPEC_FIELDS))
        if unknown:
            raise bad_file(source, f"unknown field(s) {', '.join(unknown)}; a role config has {', '.join(SPEC_FIELDS)}")
        spec.update(given)
    if prompt_file is not None:
        spec["prompt"] = prompt_file.read()
    for name, value in (("executor", executor), ("command", command), ("image", image),
                        ("timeout_seconds", timeout_seconds), ("heartbeat_seconds", heartbeat_seconds)):
        if value is not None:
            spec[name] = value
    if required_proofs:
        spec["required_proofs"] = list(required_proofs)
    if no_required_proofs:
        spec["required_proofs"] = []
    updated = client.put(f"/roles/{role}", spec)
    if as_json:
        output.print_json(updated)
        return
    output.line(f"Role {updated['role']} is now version {updated.get('version')} "
                f"(digest {(updated.get('digest') or '')[:12]})", "green")


@roles.command("versions")
@click.argument("role", type=click.Choice(ROLES), metavar="ROLE")
@json_option
@with_client
def role_versions(client: CliClient, role: str, as_json: bool) -> None:
    """List every version of a role's config.

    Runs pin the version that was active when they started, by its digest.
    """
    items = (client.get(f"/roles/{role}/versions") or {}).get("items", [])
    if as_json:
        output.print_json(items)
        return
    output.table(["VERSION", "EXECUTOR", "COMMAND", "REQUIRED PROOFS", "DIGEST", "CREATED", "BY"],
                 [(r.get("version"), r.get("executor"), r.get("command") or r.get("image"), r.get("required_proofs"),
                   (r.get("digest") or "")[:12], short_time(r.get("created_at")), r.get("created_by"))
                  for r in items])
