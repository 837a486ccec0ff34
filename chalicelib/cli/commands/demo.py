"""``baton demo`` (a whole run on the local stack) and ``baton agent run`` (the runner)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Optional

import click

from ...agent.client import BatonClient
from .. import output, watch as watching
from ..client import CliClient
from ..errors import CliError, ExitCode
from ..main import with_client

ROOT = Path(__file__).resolve().parents[3]


# The demo's canary: one task of its three goes first, two wait for the canary gate. A canary is a
# small share tried before the rest, so a third (rounded: 0.33 * 3 + 0.5 -> 1 task) rather than the
# API's most, 0.5 (which would start two of three: more canary than rest).
DEMO_CANARY = {"fraction": 0.33, "min_tasks": 1}


@click.command(epilog="""\b
Needs the local stack: run `make up` (or `baton up`) in another terminal first.
It publishes new versions of the dev, qa, security, docs and cicd roles (pointing them at the
demo's shell agents), so run it against the local stack, not a shared deployment.

\b
With --canary the run starts with canary {fraction: 0.33, min_tasks: 1}: one of the three tasks
goes first, the other two are held (queued, held: canary) until the demo approves the canary
gate as a human, as it approves the deploy gate.
""")
@click.option("--canary", is_flag=True,
              help="Start one task first (a canary), then approve the canary gate and run the other two.")
@click.option("--timeout", type=click.FloatRange(10), default=110, show_default=True,
              help="Give up after this many seconds (each wait: for a gate, for the end).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=ROOT / ".baton",
              show_default=True, help="Where the sample repository is created.")
@with_client
def demo(client: CliClient, canary: bool, timeout: float, workdir: Path) -> None:
    """Run a sample project through the whole pipeline, end to end.

    Creates a small Python repository (as a local git repo), points the roles at shell agents
    (dev edits code, qa runs pytest with a JUnit XML proof, security runs bandit, docs writes
    the docs, cicd merges the release), starts a run of three tasks, shows its progress with
    one QA loop-back, approves the deploy gate as a human, and prints a summary.
    """
    from ...demo.run import run_demo

    canary_decided: list[str] = []

    def watch(run_id: str, until_gate: bool) -> dict[str, Any]:
        while True:
            stop_at_canary = canary and not canary_decided
            code, run = watching.watch(lambda: client.get(f"/runs/{run_id}"), until_gate=until_gate or stop_at_canary,
                                       timeout=timeout, extras=watching.api_extras(client, run_id))
            if code == ExitCode.TIMED_OUT:
                raise CliError(f"run {run_id} had not finished after {timeout:.0f}s; see `baton run show {run_id}`",
                               ExitCode.TIMED_OUT)
            if stop_at_canary and run.get("status") == watching.GATE and watching.gate_of(run) == "canary":
                approve_as_human(client, run_id, "canary", "demo: the canary task went through every stage")
                canary_decided.append(run_id)
                output.line("canary gate approved by a human key; the two held tasks start", "green")
                continue
            return run

    try:
        result = run_demo(CanaryStart(client) if canary else client, workdir, output.line, watch, timeout=timeout)
    except RuntimeError as error:
        raise CliError(str(error)) from None
    run = result["run"]
    output.blank()
    output.table(["TASK", "", "SOURCE", "STAGE", "STATUS", "ITERATIONS"],
                 [(t["title"], output.canary_badge(t), output.source_text(t["source"]), t["stage"],
                   output.task_status_text(t), t["iteration"]) for t in result["tasks"]],
                 title=f"run {run['id']}: {run['status']}")
    by_type: dict[str, int] = {}
    for proof in result["proofs"]:
        by_type[proof["type"]] = by_type.get(proof["type"], 0) + 1
    prefix = f"projects/{run['project_id']}/runs/{run['id']}/"
    gates = (client.get(f"/runs/{run['id']}/approvals") or {}).get("items", [])
    output.details([
        ("status", output.status_text(run["status"])),
        ("took", f"{result['seconds']}s"),
        ("loop-backs", result["loop_backs"]),
        ("gates", ", ".join(f"{g['gate']} {g['status']}" for g in gates) or None),
        ("audit events", result["events"]),
        ("proofs", ", ".join(f"{n} {t}" for t, n in sorted(by_type.items())) or "none"),
        ("in S3 under", prefix + "tasks/<task>/<stage>-<iteration>/<type>/"),
        ("usage", f"baton run usage {run['id']}"),
    ], title="summary")
    if run["status"] != "succeeded":
        raise CliError(f"the demo run ended {run['status']}", ExitCode.FAILED)


class CanaryStart:
    """The demo's client, except that the run it starts has ``DEMO_CANARY`` (``run_demo`` builds
    the run's body itself and takes no run options)."""

    def __init__(self, client: CliClient):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def post(self, path: str, body: Any = None, headers: Optional[dict[str, str]] = None) -> Any:
        from ...demo.run import PROJECT_ID

        starts_run = path == f"/projects/{PROJECT_ID}/runs" and isinstance(body, dict)
        created = self._client.post(path, {**body, "canary": DEMO_CANARY} if starts_run else body, headers)
        if starts_run:
            output.line(f"canary: {DEMO_CANARY['fraction']:.0%} of the tasks (at least {DEMO_CANARY['min_tasks']}) "
                        "go first; the rest is held until the canary gate", "yellow")
        return created


def approve_as_human(client: CliClient, run_id: str, gate: str, comment: str) -> dict[str, Any]:
    """Decide a gate the way a reviewer would: gates take human keys, so a short-lived one is made
    for the decision and revoked after it (as the demo does for the deploy gate)."""
    from ...demo.run import PROJECT_ID

    reviewer = client.post("/keys", {"name": "demo reviewer", "principal": "human", "project_ids": [PROJECT_ID]})
    try:
        return BatonClient(client.base_url, reviewer["key"]).post(
            f"/runs/{run_id}/approvals/{gate}", {"decision": "approve", "comment": comment})
    finally:
        client.delete(f"/keys/{reviewer['id']}")


@click.group()
def agent() -> None:
    """Work dispatched jobs as an agent (the runner).

    The runner is what Baton starts for each stage job of a container role; run it by hand to
    work a task from your own machine.
    """


@agent.command("run", epilog="""\b
In a container or under the local executor the job comes from BATON_JOB (set by the dispatcher).
By hand, name the task: baton agent run --task TASK
""")
@click.option("--task", "task_id", metavar="TASK", help="Work this task at its current stage (by hand).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Scratch directory (default: a new temporary one).")
@with_client
def agent_run(client: CliClient, task_id: Optional[str], workdir: Optional[Path]) -> None:
    """Work one stage job of a task, start to finish.

    Fetches the context, checks the pinned role config (refusing on config drift), claims, clones
    the repository on the task's branch, runs the role's command while heartbeating, uploads the
    proofs, writes the handoff and advances pass or fail.
    """
    from ...agent.runner import run_job

    if os.environ.get("BATON_JOB") and not task_id:
        job = json.loads(os.environ["BATON_JOB"])
    elif task_id:
        task = client.get(f"/tasks/{task_id}")
        job = {"job_id": f"manual-{secrets.token_hex(4)}", "task_id": task_id, "stage": task["stage"],
               "attempt": 1}
    else:
        raise click.UsageError("give --task TASK (or run under the dispatcher, which sets BATON_JOB)")
    code = run_job(job, client, workdir)
    if code:
        raise CliError({3: "the lease was lost while working", 4: "the advance was refused",
                        7: "config drift: the role config is not the one the run pinned"}.get(
                            code, f"the runner stopped with code {code}"), ExitCode.FAILED)
