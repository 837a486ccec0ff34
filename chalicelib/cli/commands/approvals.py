"""``baton approve RUN --gate deploy [--reject]``: a human's decision at a run's gate."""

from __future__ import annotations

import click

from .. import output
from ..client import CliClient
from ..main import with_client
from ..output import json_option


@click.command(epilog="""\b
Examples:
  baton approve RUN_ID --gate deploy --comment "reviewed the diff and the QA report"
  baton approve RUN_ID --gate deploy --reject --comment "the security report is not clean"
""")
@click.argument("run_id", metavar="RUN")
@click.option("--gate", default="deploy", show_default=True, help="The gate to decide.")
@click.option("--reject", is_flag=True, help="Reject instead of approving (the run fails).")
@click.option("--comment", default="", help="Why; kept with the decision.")
@json_option
@with_client
def approve(client: CliClient, run_id: str, gate: str, reject: bool, comment: str, as_json: bool) -> None:
    """Approve or reject a run at a gate (human keys).

    Approving the deploy gate creates the run's release task (stage cicd); rejecting fails the
    run. A gate that is not pending answers 409 (exit 1).
    """
    decision = "reject" if reject else "approve"
    decided = client.post(f"/runs/{run_id}/approvals/{gate}", {"decision": decision, "comment": comment})
    if as_json:
        output.print_json(decided)
        return
    output.line(f"Gate {decided.get('gate', gate)} of run {run_id}: {decided.get('status', decision)}",
                "red" if reject else "green")
