"""Stage-hop latency on the local stack, and Step Functions state transitions per stage read from
the executions' own histories.

    .venv/bin/python bench/stage_hop.py [--tasks 25]

The local stack (``make up``'s: moto server with Step Functions executing, the API, the SQS pump,
the sweeper) serves one external agent (an agent key). Tasks are worked one at a time, so hops do
not queue behind each other: for each stage the agent advances ``pass`` and then asks for the task
at its next stage (``POST /queue/claim`` with ``task_id``) every ``--poll`` seconds. A hop is
advance sent → next stage claimed: the callback (SendTaskSuccess), the execution's Route and
Dispatch states, the SQS message, the pump, the dispatcher putting the task in the queue, and one
claim round trip. Tasks have the four stages; roles are external with no required proofs.

Transitions: ``get_execution_history`` of every task's execution once it ended; each
``*StateEntered`` event is one billed state transition.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import local_stack, median, percentile, print_table, record_summary  # noqa: E402

STAGES = ["dev", "qa", "sec", "docs"]
ROLES = ["dev", "qa", "security", "docs"]


def external_roles(client: Any) -> None:
    for role in ROLES:
        current = client.get(f"/roles/{role}")
        client.put(f"/roles/{role}", {"prompt": current["prompt"], "executor": "external", "required_proofs": []})


def claim_when_ready(agent: Any, task_id: str, stage: str, poll: float, timeout: float = 60) -> tuple[str, float]:
    """Poll until the task is claimable at ``stage``; (claim id, seconds waited)."""
    began = time.perf_counter()
    while True:
        status, body = agent.post_status("/queue/claim", {"stage": stage, "agent_id": "hop-agent", "task_id": task_id})
        if status == 200:
            return body["claim"]["claim_id"], time.perf_counter() - began
        if time.perf_counter() - began > timeout:
            raise SystemExit(f"task {task_id} never became claimable at {stage}")
        time.sleep(poll)


def transitions(sfn: Any, execution_arns: list[str]) -> tuple[Counter, int]:
    """StateEntered events by state name over the executions, and how many there were."""
    entered: Counter = Counter()
    for arn in execution_arns:
        pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
        for page in pages:
            for event in page["events"]:
                if event["type"].endswith("StateEntered"):
                    entered[event["stateEnteredEventDetails"]["name"]] += 1
    return entered, len(execution_arns)


def executions_named(sfn: Any, machine_arn: str, names: set[str]) -> list[str]:
    """The executions of a state machine named after the given ids (one execution per task / run)."""
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=machine_arn)
    return [e["executionArn"] for page in pages for e in page["executions"] if e["name"] in names]


def wait_ended(sfn: Any, arns: list[str], timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = {arn: sfn.describe_execution(executionArn=arn)["status"] for arn in arns}
        if all(s != "RUNNING" for s in statuses.values()) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=25, help="tasks worked one after another (3 hops each)")
    parser.add_argument("--poll", type=float, default=0.01, help="seconds between claim attempts")
    args = parser.parse_args()

    from chalicelib.agent.client import BatonClient

    with local_stack(sweep_seconds=5) as stack:
        admin = BatonClient(stack.api_url, stack.admin_key)
        external_roles(admin)
        admin.post("/projects", {"id": "hops", "name": "Hops", "repository_url": "https://example.com/hops.git"})
        key = admin.post("/keys", {"name": "hop-agent", "principal": "agent", "project_ids": ["hops"]})["key"]
        agent = BatonClient(stack.api_url, key)
        run = admin.post("/projects/hops/runs", {"title": "hops", "deploy_gate": False, "parallelism": 1,
                                                 "tasks": [{"title": f"hop {i}"} for i in range(args.tasks)]})
        hops: list[float] = []
        first_claims: list[float] = []
        task_ids: list[str] = []
        while len(task_ids) < args.tasks:
            # parallelism 1: the next task starts when the previous one is done
            began = time.perf_counter()
            while True:
                status, body = agent.post_status("/queue/claim", {"stage": "dev", "agent_id": "hop-agent",
                                                                  "run_id": run["id"]})
                if status == 200:
                    break
                if time.perf_counter() - began > 60:
                    raise SystemExit("no task became claimable at dev")
                time.sleep(args.poll)
            first_claims.append(time.perf_counter() - began)
            task_id, claim_id = body["task"]["id"], body["claim"]["claim_id"]
            task_ids.append(task_id)
            for stage, following in zip(STAGES, STAGES[1:] + [None]):
                sent = time.perf_counter()
                agent.post(f"/tasks/{task_id}/advance", {"claim_id": claim_id, "result": "pass"})
                if following is None:
                    break
                claim_id, _ = claim_when_ready(agent, task_id, following, args.poll)
                hops.append(time.perf_counter() - sent)

        import boto3

        sfn = boto3.session.Session().client("stepfunctions", endpoint_url=stack.moto_url, region_name="us-east-1")
        settings = stack.services.settings
        arns = executions_named(sfn, settings.task_state_machine_arn, set(task_ids))
        statuses = wait_ended(sfn, arns)
        entered, executions = transitions(sfn, arns)
        run_arns = executions_named(sfn, settings.run_state_machine_arn, {run["id"]})
        wait_ended(sfn, run_arns)
        run_entered, _ = transitions(sfn, run_arns)

    stage_jobs = executions * len(STAGES)
    per_stage = sum(n for name, n in entered.items() if name in ("Dispatch", "Route")) / stage_jobs
    per_task = sum(entered.values()) / executions
    print("## Stage hop on the local stack\n")
    print(f"{len(hops)} hops ({args.tasks} tasks × {len(STAGES) - 1}), one task at a time, claim polled every "
          f"{args.poll * 1000:.0f} ms.\n")
    print_table(["figure", "p50", "p95", "max", "design minimum"],
                [["stage hop: advance → next stage claimed", f"{median(hops) * 1000:.0f} ms",
                  f"{percentile(hops, 95) * 1000:.0f} ms", f"{max(hops) * 1000:.0f} ms", "– (none stated)"],
                 ["a task ended → the next one claimable at dev (parallelism 1: fill, StartExecution, Dispatch)",
                  f"{median(first_claims) * 1000:.0f} ms", f"{percentile(first_claims, 95) * 1000:.0f} ms",
                  f"{max(first_claims) * 1000:.0f} ms", "–"]])
    print("\n## Step Functions state transitions (from get_execution_history)\n")
    ended = Counter(statuses.values())
    print(f"{executions} task executions ({', '.join(f'{n} {s}' for s, n in ended.items())}), {len(STAGES)} stages "
          f"each, no loop-back.\n")
    print_table(["state", "entered", "per stage", "per task"],
                [[name, n, f"{n / stage_jobs:.2f}", f"{n / executions:.2f}"] for name, n in entered.most_common()])
    print(f"\n**{per_stage:.2f} transitions per stage** (Dispatch + Route; design minimum 2) plus "
          f"{per_task - per_stage * len(STAGES):.2f} per task (its end state): {per_task:.2f} per {len(STAGES)}-stage "
          f"task. The run's own execution: {sum(run_entered.values())} "
          f"({', '.join(f'{k} {v}' for k, v in run_entered.items())}).")
    record_summary("stage_hop", [
        {"figure": "stage hop latency, local stack (p50 / p95)",
         "measured": f"{median(hops) * 1000:.0f} / {percentile(hops, 95) * 1000:.0f} ms", "minimum": "– (none stated)"},
        {"figure": "Step Functions transitions per stage", "measured": f"{per_stage:.2f}", "minimum": 2}])
    return 0


if __name__ == "__main__":
    sys.exit(main())
