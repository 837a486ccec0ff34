"""``baton up`` (the local stack, in this process) and ``baton status`` (is the API there?)."""

from __future__ import annotations

import os
from typing import Optional

import click

from .. import output
from ..main import CliContext, pass_context
from ..output import json_option


@click.command(epilog="""\b
Examples:
  baton up                 # API on http://127.0.0.1:8000
  baton up --port 8010
  baton up --fresh         # start empty, not from .baton/state/
""")
@click.option("--port", type=click.IntRange(1, 65535), metavar="PORT",
              help="Port of the API (default: BATON_API_PORT, else 8000).")
@click.option("--fresh", is_flag=True,
              help="Start empty instead of restoring the saved state; what is saved is replaced when the stack "
                   "stops. Same as `make up FRESH=1`.")
@click.pass_context
def up(ctx: click.Context, port: Optional[int], fresh: bool) -> None:
    """Run the local stack (moto, API, pipelines, agents).

    Starts moto, the API, Step Functions, the SQS pump and the local agent executor. Everything
    runs in this process, in the foreground, until Ctrl-C. It prints the API URL and an
    admin key, and writes both to .baton/config.json, where the other commands find them. Same as
    `make up`.

    Stopping it (Ctrl-C or SIGTERM) saves its data (projects, runs, keys, proofs, queued messages)
    in .baton/state/, and starting it again restores them, with the same admin key. A saved state
    that cannot be loaded stops the start with the reason; --fresh starts empty.
    """
    if port:
        os.environ["BATON_API_PORT"] = str(port)
    from ...local.stack import main as run_local_stack

    ctx.exit(run_local_stack(["--fresh"] if fresh else []))


@click.command()
@json_option
@pass_context
def status(context: CliContext, as_json: bool) -> None:
    """Check the connection to the API and the key.

    Says which API the CLI talks to and where that came from, reads GET /status, then lists one
    project to prove the key is accepted. Use it first when another command cannot reach the API or
    is refused.
    """
    config = context.config
    info = context.client.get("/status") or {}
    context.client.get("/projects?limit=1")
    if as_json:
        output.print_json({**info, "api_url": config.api_url, "url_source": config.url_source,
                           "key_source": config.key_source})
        return
    output.details([("API", config.api_url), ("from", config.url_source), ("key from", config.key_source),
                    ("status", output.text(info.get("status"), "green" if info.get("status") == "ok" else "red")),
                    ("version", info.get("version")), ("stage", info.get("stage")), ("key", "accepted")])
