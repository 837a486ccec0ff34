"""``baton demo`` (a whole run on the local stack) and ``baton agent run`` (the runner)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Optional

import click

from .. import output, watch as watching
from ..client import CliClient
from ..errors import CliError, ExitCode
from ..main import with_client

ROOT = Path(__file__).resolve().parents[3]


@click.command(epilog="""\b
Needs the local stack: run `make up` (or `baton up`) in another terminal first.
It publishes new versions of the dev, qa, security, docs and cicd roles (pointing them at the
demo's shell agents), so run it against the local stack, not a shared deployment.
""")
@click.option("--timeout", type=click.FloatRange(10), default=110, show_default=True,
              help="Give up after this many seconds.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=ROOT / ".baton",
              show_default=True, help="Where the sample repository is created.")
@with_client
def demo(client: CliClient, timeout: float, workdir: Path) -> None:
    """Run a sample project through the whole pipeline, end to end.

    Creates a small Python repository (as a local git repo), points the roles at shell agents
    (dev edits code, qa runs pytest with a JUnit XML proof, security runs bandit, docs writes
    the docs, cicd merges the release), starts a run of three tasks, shows its progress with
    one QA loop-back, approves the deploy gate as a human, and prints a summary.
    """
    from ...demo.run import run_demo

    def watch(run_id: str, until_gate: bool) -> dict[str, Any]:
        code, run = watching.watch(lambda: client.get(f"/runs/{run_id}"), until_gate=until_gate, timeout=timeout)
        if code == ExitCode.TIMED_OUT:
            raise CliError(f"run {run_id} had not finished after {timeout:.0f}s; see `baton run show {run_id}`",
                           ExitCode.TIMED_OUT)
        return run

    try:
        result = run_demo(client, workdir, output.line, watch, timeout=timeout)
    except RuntimeError as error:
        raise CliError(str(error)) from None
    run = result["run"]
    output.blank()
    output.table(["TASK", "SOURCE", "STAGE", "STATUS", "ITERATIONS"],
                 [(t["title"], t["source"], t["stage"], output.status_text(t["status"]), t["iteration"])
                  for t in result["tasks"]], title=f"run {run['id']}: {run['status']}")
    by_type: dict[str, int] = {}
    for proof in result["proofs"]:
        by_type[proof["type"]] = by_type.get(proof["type"], 0) + 1
    prefix = f"projects/{run['project_id']}/runs/{run['id']}/"
    output.details([
        ("status", output.status_text(run["status"])),
        ("took", f"{result['seconds']}s"),
        ("loop-backs", result["loop_backs"]),
        ("audit events", result["events"]),
        ("proofs", ", ".join(f"{n} {t}" for t, n in sorted(by_type.items())) or "none"),
        ("in S3 under", prefix + "tasks/<task>/<stage>-<iteration>/<type>/"),
    ], title="summary")
    if run["status"] != "succeeded":
        raise CliError(f"the demo run ended {run['status']}", ExitCode.FAILED)


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
