"""``baton approve RUN [--gate canary|deploy|budget] [--reject]`` and ``baton reject RUN``: a
human's decision at a run's gate."""

from __future__ import annotations

from typing import Any, Optional

import click

from .. import output
from ..client import CliClient
from ..main import with_client
from ..output import json_option

GATE_CHOICE = click.Choice(["canary", "deploy", "budget"])

# What follows a decision, by gate: (approved, rejected).
NEXT = {
    "canary": ("the held tasks start now", "the held tasks are cancelled and the run fails"),
    "deploy": ("the release task (stage cicd) starts now", "the run fails"),
    "budget": ("the run goes on with its raised budget", "what is left is cancelled and the run fails"),
}

GATES_HELP = """\b
Gates: canary (the canary tasks ended; approving starts the held rest), deploy (every task
ended; approving creates the release task), budget (the run used its --max-cost/--max-tokens;
approving needs --raise-cost and/or --raise-tokens). A gate that is not pending answers 409."""


def gate_option(function: Any) -> Any:
    return click.option("--gate", type=GATE_CHOICE, default="deploy", show_default=True,
                        help="The gate to decide.")(function)


def comment_option(function: Any) -> Any:
    return click.option("--comment", default="", help="Why; kept with the decision.")(function)


@click.command(epilog=GATES_HELP + """

\b
Examples:
  baton approve RUN_ID --gate deploy --comment "reviewed the diff and the QA report"
  baton approve RUN_ID --gate canary --comment "the canary tasks look right"
  baton approve RUN_ID --gate budget --raise-cost 10 --comment "worth finishing"
  baton reject RUN_ID --gate deploy --comment "the security report is not clean"
""")
@click.argument("run_id", metavar="RUN")
@gate_option
@click.option("--reject", is_flag=True, help="Reject instead of approving (the same as `baton reject`).")
@comment_option
@click.option("--raise-cost", "raise_cost_usd", type=float, metavar="USD",
              help="Budget gate: add this much to the run's max cost.")
@click.option("--raise-tokens", type=int, metavar="N", help="Budget gate: add this many to the run's max tokens.")
@json_option
@with_client
def approve(client: CliClient, run_id: str, gate: str, reject: bool, comment: str, raise_cost_usd: Optional[float],
            raise_tokens: Optional[int], as_json: bool) -> None:
    """Approve or reject a run at a gate (human keys).

    Approving the canary gate starts the held tasks; approving the deploy gate creates the run's
    release task (stage cicd); approving the budget gate raises the budget by --raise-cost /
    --raise-tokens. Rejecting any gate fails the run.
    """
    decide(client, run_id, gate, "reject" if reject else "approve", comment, raise_cost_usd, raise_tokens, as_json)


@click.command(epilog=GATES_HELP + """

\b
Examples:
  baton reject RUN_ID --gate canary --comment "two canary tasks looped back twice"
  baton reject RUN_ID --comment "not this release"          # the deploy gate
""")
@click.argument("run_id", metavar="RUN")
@gate_option
@comment_option
@json_option
@with_client
def reject(client: CliClient, run_id: str, gate: str, comment: str, as_json: bool) -> None:
    """Reject a run at a gate: the run fails (human keys).

    Rejecting the canary gate cancels the held tasks; rejecting the budget gate cancels what is
    left; rejecting the deploy gate releases nothing. Same as `baton approve --reject`.
    """
    decide(client, run_id, gate, "reject", comment, None, None, as_json)


def decide(client: CliClient, run_id: str, gate: str, decision: str, comment: str,
           raise_cost_usd: Optional[float], raise_tokens: Optional[int], as_json: bool) -> None:
    body: dict[str, Any] = {"decision": decision, "comment": comment}
    if raise_cost_usd is not None:
        body["raise_cost_usd"] = raise_cost_usd
    if raise_tokens is not None:
        body["raise_tokens"] = raise_tokens
    decided = client.post(f"/runs/{run_id}/approvals/{gate}", body)
    if as_json:
        output.print_json(decided)
        return
    approved = decision == "approve"
    status = decided.get("status", "approved" if approved else "rejected")
    raised = ", ".join(part for part in (
        None if raise_cost_usd is None else f"+{output.usd(raise_cost_usd)}",
        None if raise_tokens is None else f"+{output.count(raise_tokens)} tokens") if part)
    following = NEXT.get(decided.get("gate", gate), ("", ""))[0 if approved else 1]
    output.line(f"Gate {decided.get('gate', gate)} of run {run_id}: {status}" + (f" ({raised})" if raised else "")
                + (f"; {following}" if following else ""), "green" if approved else "red")
