"""A scale run on the local stack: 200 tasks × 4 stages worked by 20 concurrent scripted agents.

    .venv/bin/python bench/scale.py [--tasks 200] [--agents 20] [--stages 4]
    BENCH_SCALE_TASKS=50 BENCH_SCALE_AGENTS=5 make bench-scale

Each agent is an external executor of one role (the agents are spread evenly over the stages) with
an agent key of its own, working through the API as a real one would: claim by run id, heartbeat,
write a handoff under its claim (``Baton-Claim``), advance ``pass``; when nothing is claimable it
waits ``--idle`` seconds, doubling up to 2 s. Roles are external with no required proofs; the run
has no deploy gate. Everything (moto, the API, the pump, the agents' threads) shares this one
process, as ``make up`` does: the figures are the local stack's, not AWS's.

Checked and printed (measured, not asserted): double claims (the agents' own successful claims,
and the run's audit log: a task's stage claimed twice), lost callbacks (task executions not
SUCCEEDED once the run ended, callbacks the sweeper had to redeliver), every task complete; wall
time, stage jobs per second, and DynamoDB transaction conflicts per commit (TransactWriteItems
cancelled, and retried by botocore, per one that succeeded), counted with botocore hooks.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import local_stack, median, percentile, print_table, record_summary, report_scans, scans  # noqa: E402
from bench.meter import AwsMeter  # noqa: E402

ALL_STAGES = ["dev", "qa", "sec", "docs"]
ROLES = {"dev": "dev", "qa": "qa", "sec": "security", "docs": "docs"}


class Agent(threading.Thread):
    """One scripted external agent of one role: it claims its stage's jobs of the run, and backs off
    (``idle`` seconds, doubling up to ``MAX_IDLE``) while none is claimable, as a real agent's loop would."""

    MAX_IDLE = 2.0

    def __init__(self, index: int, client: Any, run_id: str, stage: str, idle: float, done: threading.Event):
        super().__init__(daemon=True, name=f"agent-{index}-{stage}")
        self.client = client
        self.run_id = run_id
        self.stage = stage
        self.idle = idle
        self.done = done
        self.claims: list[tuple[str, str, int, str]] = []    # (task, stage, iteration, claim id)
        self.latencies: list[float] = []                     # one stage job: claim → advance answered
        self.empty_claims = 0
        self.errors: Counter = Counter()

    def run(self) -> None:
        from chalicelib.agent.client import ApiError

        wait = self.idle
        while not self.done.is_set():
            try:
                if self.work_one():
                    wait = self.idle
                    continue
            except ApiError as error:
                self.errors[f"{error.status} {error.code}"] += 1
            self.done.wait(wait)
            wait = min(self.MAX_IDLE, wait * 2)

    def work_one(self) -> bool:
        began = time.perf_counter()
        status, body = self.client.post_status("/queue/claim", {
            "stage": self.stage, "agent_id": self.name, "run_id": self.run_id, "lease_seconds": 600})
        if status != 200:
            self.empty_claims += 1
            return False
        task, claim_id = body["task"], body["claim"]["claim_id"]
        self.claims.append((task["id"], self.stage, task["iteration"], claim_id))
        self.client.post(f"/tasks/{task['id']}/heartbeat", {"claim_id": claim_id, "lease_seconds": 600})
        self.client.for_claim(claim_id).post(f"/tasks/{task['id']}/handoffs", {
            "from_role": ROLES[self.stage], "to_role": ROLES[self.stage], "summary": f"{self.stage} by {self.name}",
            "confidence": "high"})
        self.client.post(f"/tasks/{task['id']}/advance", {"claim_id": claim_id, "result": "pass"})
        self.latencies.append(time.perf_counter() - began)
        return True


def run_events(client: Any, run_id: str) -> list[dict[str, Any]]:
    events, after = [], 0
    while True:
        page = client.get(f"/runs/{run_id}/events?after={after}&limit=200")["items"]
        if not page:
            return events
        events += page
        after = page[-1]["seq"]


def main() -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=int(env("BENCH_SCALE_TASKS", "200")))
    parser.add_argument("--agents", type=int, default=int(env("BENCH_SCALE_AGENTS", "20")))
    parser.add_argument("--stages", type=int, default=int(env("BENCH_SCALE_STAGES", "4")), choices=range(1, 5))
    parser.add_argument("--idle", type=float, default=float(env("BENCH_SCALE_IDLE", "0.25")),
                        help="seconds an agent first waits when nothing is claimable (doubling up to 2 s)")
    parser.add_argument("--timeout", type=float, default=float(env("BENCH_SCALE_TIMEOUT", "1800")))
    args = parser.parse_args()
    stages = ALL_STAGES[:args.stages]

    from chalicelib.agent.client import BatonClient

    import logging

    class Kept(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.records: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(f"{record.name}: {record.getMessage()}"[:300])

    kept = Kept()
    logging.getLogger("baton").addHandler(kept)   # e.g. an outbox delivery left to the sweeper
    meter = AwsMeter(dynamo_units=False)
    with local_stack(meter=meter, sweep_seconds=5) as stack:
        admin = BatonClient(stack.api_url, stack.admin_key)
        for role in ROLES.values():
            current = admin.get(f"/roles/{role}")
            admin.put(f"/roles/{role}", {"prompt": current["prompt"], "executor": "external", "required_proofs": []})
        admin.post("/projects", {"id": "scale", "name": "Scale", "repository_url": "https://example.com/scale.git"})
        keys = [admin.post("/keys", {"name": f"agent-{i}", "principal": "agent", "project_ids": ["scale"]})["key"]
                for i in range(args.agents)]
        meter.take()
        began = time.perf_counter()
        run_ids = []
        remaining = args.tasks
        while remaining:   # the API takes at most 1,000 tasks per run creation; one run is the usual case
            size = min(1000, remaining)
            run_ids.append(admin.post("/projects/scale/runs", {
                "title": "scale", "stages": stages, "deploy_gate": False, "parallelism": min(100, size),
                "tasks": [{"title": f"scale {i}"} for i in range(size)]})["id"])
            remaining -= size
        run_id = run_ids[0]
        done = threading.Event()
        agents = [Agent(i, BatonClient(stack.api_url, keys[i]), run_id, stages[i % len(stages)], args.idle, done)
                  for i in range(args.agents)]
        for agent in agents:
            agent.start()
        status = "running"
        while time.perf_counter() - began < args.timeout:
            status = admin.get(f"/runs/{run_id}")["status"]
            if status in ("succeeded", "failed", "killed"):
                break
            time.sleep(0.5)
        wall = time.perf_counter() - began
        done.set()
        for agent in agents:
            agent.join(timeout=30)
        time.sleep(1.0)
        tasks = []
        cursor = None
        while True:
            page = admin.get(f"/runs/{run_id}/tasks?limit=200" + (f"&cursor={cursor}" if cursor else ""))
            tasks += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        events = run_events(admin, run_id)
        import boto3

        sfn = boto3.session.Session().client("stepfunctions", endpoint_url=stack.moto_url, region_name="us-east-1")
        names = {t["id"] for t in tasks}
        execution_status: dict[str, str] = {}
        for page in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=stack.services.settings.task_state_machine_arn):
            execution_status.update({e["name"]: e["status"] for e in page["executions"] if e["name"] in names})
        calls = meter.take()

    claims = [c for agent in agents for c in agent.claims]
    by_job = Counter((task, stage, iteration) for task, stage, iteration, _ in claims)
    double_by_agents = sum(n - 1 for n in by_job.values() if n > 1)
    claimed_events = Counter((e["entity"], e["data"].get("to_stage"), e["data"].get("iteration"))
                             for e in events if e["action"] == "task.claimed")
    double_in_log = sum(n - 1 for n in claimed_events.values() if n > 1)
    complete = sum(1 for t in tasks if t["status"] == "done")
    ended = {t["id"] for t in tasks if t["status"] in ("done", "failed", "cancelled")}
    # A lost callback: the task ended in DynamoDB but its execution still waits for the answer.
    lost = sum(1 for name, state in execution_status.items() if name in ended and state == "RUNNING")
    unfinished = len(tasks) - len(ended)
    answers = [c for c in calls if c.service == "stepfunctions" and c.operation.startswith("SendTask")]
    by_sweeper = [c for c in answers if c.scope == "sweeper"]
    refused = Counter(c.error for c in answers if c.error)
    transacts = [c for c in calls if c.operation == "TransactWriteItems"]
    commits = sum(1 for c in transacts if not c.error)
    cancelled = [c for c in transacts if c.error]
    retried = sum(c.retries for c in transacts)
    reasons = Counter(f"{r} on {item}" for c in cancelled for item, r in zip(c.target.split(" + "), c.reasons)
                      if r and r != "None")
    conditional = Counter(c.operation for c in calls if c.error == "ConditionalCheckFailedException")
    latencies = [x for agent in agents for x in agent.latencies]
    errors = sum((agent.errors for agent in agents), Counter())

    print("## Scale run on the local stack\n")
    print(f"{args.tasks} tasks × {len(stages)} stages ({', '.join(stages)}), {args.agents} concurrent agents "
          f"(threads, one agent key each, claim by run id → heartbeat → handoff under Baton-Claim → advance pass); "
          f"run ended **{status}**.\n")
    print_table(["figure", "measured", "expected"], [
        ["double claims (agents' own claims / the audit log)", f"{double_by_agents} / {double_in_log}", "0"],
        ["lost callbacks (task ended, its execution still waiting)", f"{lost} of {len(ended)} ended tasks", "0"],
        ["task executions SUCCEEDED", f"{sum(1 for s in execution_status.values() if s == 'SUCCEEDED')} of "
                                      f"{len(execution_status)}", str(args.tasks)],
        ["callbacks sent by the sweeper / refused as already answered",
         f"{len(by_sweeper)} / {sum(refused.values())}", "0 / 0"],
        ["tasks done (not yet ended when the run was stopped)", f"{complete} of {len(tasks)} ({unfinished})",
         str(args.tasks)],
        ["claims that found nothing (agents idle)", sum(a.empty_claims for a in agents), "–"],
        ["stage jobs claimed and advanced", len(claims), str(args.tasks * len(stages))],
        ["wall time (run created → run ended)", f"{wall:.1f} s", "–"],
        ["stage jobs per second", f"{len(claims) / wall:.1f}", "–"],
        ["stage job, claim → advance answered (p50 / p95)",
         f"{median(latencies) * 1000:.0f} / {percentile(latencies, 95) * 1000:.0f} ms", "–"],
        ["TransactWriteItems: committed / cancelled / retried by botocore", f"{commits} / {len(cancelled)} / {retried}",
         "–"],
        ["**transaction conflicts per commit**", f"**{(len(cancelled) + retried) / max(1, commits):.2f}**", "0 (none needed)"],
    ])
    print(f"\nCancelled transactions' reasons: {', '.join(f'{k}×{v}' for k, v in reasons.most_common()) or '–'}; "
          f"failed conditional single-item writes: {', '.join(f'{k}×{v}' for k, v in conditional.items()) or '–'}; "
          f"agent-side errors: {', '.join(f'{k}×{v}' for k, v in errors.most_common()) or '–'}; Step Functions "
          f"answers refused: {', '.join(f'{k}×{v}' for k, v in refused.items()) or '–'}.")
    if kept.records:
        print(f"Warnings logged by Baton ({len(kept.records)}): " + "; ".join(kept.records[:3]))
    record_summary("scale", [{"figure": f"scale run {args.tasks}×{len(stages)}, {args.agents} agents",
                              "measured": f"{double_by_agents + double_in_log} double claims, {lost} lost "
                                          f"callbacks, {complete}/{len(tasks)} complete, {wall:.0f} s, "
                                          f"{len(claims) / wall:.1f} jobs/s, "
                                          f"{(len(cancelled) + retried) / max(1, commits):.2f} conflicts/commit",
                              "minimum": "0 double claims, 0 lost callbacks, all complete"}])
    return report_scans([f"{c.scope} {c.detail}".strip() for c in scans(calls)])


if __name__ == "__main__":
    sys.exit(main())
