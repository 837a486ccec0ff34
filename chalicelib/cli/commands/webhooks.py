"""``baton webhooks add|list|remove|deliveries``: a project's webhooks (humans and admins)."""

from __future__ import annotations

from typing import Optional

import click

from .. import output
from ..client import CliClient
from ..main import with_client
from ..output import json_option, short_time

STORE_IT = "Store this secret now: it is shown only once. Verify each delivery's Baton-Signature with it."


@click.group(epilog="""\b
Examples:
  baton webhooks add --project shop --url https://hooks.example.com/baton --event 'run.*' --event approval.requested
  baton webhooks add --project shop --url https://hooks.slack.com/services/T/B/X --event approval.requested --slack
  baton webhooks list --project shop
  baton webhooks deliveries WEBHOOK_ID
  baton webhooks remove WEBHOOK_ID

\b
Patterns: an audit action (approval.requested), a family (run.*, task.*, approval.*) or * for every
event. Each delivery is a signed POST (Baton-Signature: sha256=<HMAC-SHA256 of the body>), in order
per run, retried with backoff for 24 h.
""")
def webhooks() -> None:
    """Send a project's events to a URL (chat, CI, a service).

    Webhooks are managed by the project's humans and admins; https only (http to 127.0.0.1 on the
    local stack), never to private or link-local addresses.
    """


@webhooks.command("add")
@click.option("--project", "-p", "project_id", required=True, metavar="PROJECT", help="The project whose events go out.")
@click.option("--url", required=True, help="Where deliveries are POSTed (https://...).")
@click.option("--event", "-e", "patterns", multiple=True, required=True, metavar="PATTERN",
              help="An event pattern: approval.requested, run.*, * ... Repeatable.")
@click.option("--secret", default=None, help="The signing secret (16+ characters); generated when left out.")
@click.option("--slack", is_flag=True, help='Send {"text": "..."} (a Slack or chat incoming webhook) instead of the event.')
@json_option
@with_client
def add_webhook(client: CliClient, project_id: str, url: str, patterns: tuple[str, ...], secret: Optional[str],
                slack: bool, as_json: bool) -> None:
    """Subscribe a URL to a project's events.

    Prints the webhook and its signing secret, once: keep it to verify each delivery's
    Baton-Signature. With --slack the body is {"text": ...}, one line a person reads.
    """
    body = {"url": url, "events": list(patterns), **({"secret": secret} if secret else {}),
            **({"format": "slack"} if slack else {})}
    created = client.post(f"/projects/{project_id}/webhooks", body)
    if as_json:
        output.print_json(created)
    else:
        output.details([("webhook id", created["id"]), ("url", created["url"]), ("events", ", ".join(created["events"])),
                        ("format", created.get("format", "baton"))])
        output.line(created["secret"], "bold green")
    output.note(STORE_IT)


@webhooks.command("list")
@click.option("--project", "-p", "project_id", required=True, metavar="PROJECT", help="The project.")
@json_option
@with_client
def list_webhooks(client: CliClient, project_id: str, as_json: bool) -> None:
    """List a project's webhooks.

    Shows id, URL, event patterns and format; never the secrets, which only their creator saw.
    """
    items = client.collect(f"/projects/{project_id}/webhooks")
    if as_json:
        output.print_json(items)
        return
    output.table(["ID", "URL", "EVENTS", "FORMAT", "CREATED", "BY"],
                 [(h["id"], h["url"], ", ".join(h["events"]), h.get("format", "baton"), short_time(h.get("created_at")),
                   h.get("created_by")) for h in items], empty=f"no webhooks in project {project_id}")


@webhooks.command("remove")
@click.argument("webhook_id", metavar="WEBHOOK_ID")
@json_option
@with_client
def remove_webhook(client: CliClient, webhook_id: str, as_json: bool) -> None:
    """Remove a webhook.

    Nothing more is delivered to it; deliveries still queued are dropped when their turn comes.
    """
    removed = client.delete(f"/webhooks/{webhook_id}")
    if as_json:
        output.print_json(removed)
        return
    output.line(f"Removed webhook {removed.get('id', webhook_id)} ({removed.get('url', '')})", "yellow")


@webhooks.command("deliveries")
@click.argument("webhook_id", metavar="WEBHOOK_ID")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="How many, newest run first.")
@json_option
@with_client
def list_deliveries(client: CliClient, webhook_id: str, limit: int, as_json: bool) -> None:
    """List a webhook's deliveries, newest run first.

    Each event delivered or to deliver: pending, delivered or failed (after 24 h of retries), its
    attempts, the receiver's last answer and when the next attempt is due.
    """
    items = client.collect(f"/webhooks/{webhook_id}/deliveries", limit=limit)
    if as_json:
        output.print_json(items)
        return
    styles = {"delivered": "green", "failed": "red", "pending": "yellow"}
    output.table(["ID", "RUN", "SEQ", "ACTION", "STATUS", "ATTEMPTS", "LAST", "NEXT ATTEMPT"],
                 [(d["delivery_id"], d["run_id"], d["event_seq"], d["action"],
                   output.text(d["status"], styles.get(d["status"], "")), d.get("attempts", 0),
                   d.get("last_status_code") or (d.get("last_error") or "")[:40] or None,
                   short_time(d.get("next_attempt_at"))) for d in items],
                 empty=f"no deliveries for webhook {webhook_id} yet")
