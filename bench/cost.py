"""Cost per 1,000 task-stages at AWS list prices, from the calls counted in a real run of the demo
pipeline (``baton demo``) on the local stack, agent compute excluded.

    .venv/bin/python bench/cost.py

What is counted, in this process (``bench/meter.py``): every Lambda invocation the stack makes
(each API request is one ``api_handler`` invocation behind one API Gateway request; each SQS batch
one ``dispatch`` invocation) with its CPU time and its AWS calls; every other AWS call (Step
Functions' own SendMessage to SQS, the event source's ReceiveMessage/DeleteMessage); DynamoDB
request units from the items' sizes; S3 requests the agents make with the presigned forms and
URLs the API hands out; Step Functions state transitions from the executions' histories.

A task-stage is one stage job worked to its end (one ``advance``): the demo's three tasks × four
stages, a QA loop-back (dev and qa again) and the release task's cicd stage.

Left out of the per-stage figure and shown apart: the demo's setup (roles, project) and the
driver's polling and summary reads; the sweeper, a fixed cost per minute whatever the load.
Not priced: agent compute (ECS/Fargate), CloudWatch Logs, X-Ray, KMS, data transfer.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ROOT, local_stack, print_table, record_summary, report_scans, scans  # noqa: E402
from bench.meter import AwsMeter, Call, Invocation, LambdaMeter  # noqa: E402
from bench.prices import ASSUMED_CALL_MS, FREE_CALLS, FULL_VCPU_MB, PRICES, PRICES_AS_OF, call_ms  # noqa: E402

ESTIMATE_BEFORE, AIM = 0.15, 0.10
SWEEPS_PER_MONTH = 60 * 24 * 30


def memory_sizes() -> dict[str, int]:
    import json

    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return {name: int(cfg["lambda_memory_size"]) for name, cfg in config["lambda_functions"].items()}


def driver_client(base_url: str, key: str) -> Any:
    """The demo driver's client, labelling its own requests (``X-Bench-Phase``) so that the setup,
    the progress polling and the summary reads are left out of the per-stage cost."""
    from chalicelib.agent.client import BatonClient

    class DriverClient(BatonClient):
        def request(self, method: str, path: str, body: Any = None,
                    headers: Optional[dict[str, str]] = None) -> tuple[int, Any]:
            return super().request(method, path, body, {**(headers or {}), "X-Bench-Phase": phase_of(method, path)})

    return DriverClient(base_url, key)


def phase_of(method: str, path: str) -> str:
    path = path.split("?")[0]
    if path.startswith("/roles") or (path.startswith("/projects") and not path.endswith(("/runs", "/proofs"))):
        return "setup"
    if method == "GET" and re.fullmatch(r"/runs/[^/]+", path):
        return "watch"
    if method == "GET":
        return "report"
    return "run"


def watcher(client: Any, interval: float = 1.0, timeout: float = 180) -> Any:
    def watch(run_id: str, until_gate: bool) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = client.get(f"/runs/{run_id}")
            if run["status"] in ("succeeded", "failed", "killed") or (until_gate and run["status"] == "awaiting_approval"):
                return run
            if time.monotonic() > deadline:
                raise SystemExit(f"run {run_id} still {run['status']} after {timeout} s")
            time.sleep(interval)
    return watch


def usage_of(invocations: list[Invocation], outside: list[Call], memory: dict[str, int]) -> dict[str, float]:
    """What the invocations (and the calls made outside any) use, in the price table's units."""
    calls = [c for i in invocations for c in i.calls] + outside
    usage: dict[str, float] = defaultdict(float)
    usage["REST API request"] = sum(1 for i in invocations if i.function == "api_handler")
    usage["request"] = len(invocations)
    usage["GB-second"] = sum(billed_ms(i, memory[i.function]) / 1000 * memory[i.function] / 1024 for i in invocations)
    usage["write request unit"] = sum(c.wru for c in calls)
    usage["read request unit"] = sum(c.rru for c in calls)
    usage["standard request"] = sum(1 for c in calls if c.service == "sqs")
    usage["PUT/COPY/POST/LIST request"] = sum(1 for c in calls if c.label in ("s3:PutObject", "s3:CopyObject"))
    usage["GET/HEAD request"] = sum(1 for c in calls if c.label in ("s3:GetObject", "s3:HeadObject"))
    usage["custom event published"] = sum(c.events for c in calls if c.label == "events:PutEvents")
    return usage


def dollars(usage: dict[str, float]) -> float:
    return sum(amount * PRICES[unit].usd for unit, amount in usage.items())


def levers(counted: list[Invocation], calls: list[Call], transitions: Counter, memory: dict[str, int],
           stage_jobs: int, total: float) -> None:
    """What changes to the product would save, worked out from this run's own counts."""
    def wru(calls_: list[Call], item: str) -> float:
        return sum(c.wru_by_item.get(item, 0) for c in calls_)

    events = sum(c.target.count("Put RUN#/EVENT#") for c in calls if c.operation == "TransactWriteItems" and not c.error)
    declares = [i for i in counted if i.what == "POST /tasks/{task_id}/proofs"]
    declare_calls = [c for i in declares for c in i.calls]
    versions = [i for i in counted if i.what.startswith("GET /roles/") and i.what.endswith("/versions")]
    confirms = [c for i in counted if i.what.endswith("/confirm") for c in i.calls if c.label == "s3:GetObject"]
    api_gb = memory["api_handler"] / 1024
    rows = [
        ("the run's event sequence and counters on an item under 1 KB outside gsi1 (2 WRU per change)",
         {"write request unit": wru(calls, "RUN#/META") + wru(calls, "RUN#/META gsi1") - 2 * events}),
        ("one state transition per stage: Dispatch loops on itself, its Catch routes the end",
         {"standard state transition": transitions.get("Route", 0)}),
        ("the pinned role version in the context answer (no GET /roles/{role}/versions)", usage_of(versions, [], memory)),
        ("proofs checked by S3's own SHA-256 checksum (no GetObject on confirm)",
         {"GET/HEAD request": len(confirms), "GB-second": len(confirms) * call_ms("s3", "GetObject") / 1000 * api_gb}),
        ("no audit event for a proof declaration (its confirmation has one)",
         {"write request unit": wru(declare_calls, "RUN#/EVENT#") + 2 * len(declares)}),
    ]
    print("\nWhat would save what, from this run's counts (estimates; each on top of the ones above it):\n")
    remaining, table = total, []
    for name, saved in rows:
        cut = dollars(saved) / stage_jobs * 1000
        remaining -= cut
        table.append([name, f"−${cut:.4f}", f"${remaining:.3f}"])
    print_table(["change", "per 1,000 task-stages", "total after"], table)
    beats = [i for i in counted if i.what.endswith("/heartbeat")]
    if beats:
        print(f"\nA heartbeat costs ${dollars(usage_of(beats, [], memory)) / len(beats) * 1e6:.2f} per million "
              f"({len(beats)} in this run); an agent's runner beats every heartbeat_seconds / 3, so a long stage "
              "adds one such request per beat.")


def billed_ms(invocation: Invocation, memory_mb: int) -> float:
    cpu = invocation.cpu_ms * max(1.0, FULL_VCPU_MB / memory_mb)
    return max(1.0, math.ceil(cpu + sum(call_ms(c.service, c.operation) for c in invocation.calls)))


def transitions_of_demo(stack: Any, run_id: str) -> tuple[Counter, int]:
    """State transitions by state name, and how many executions: the demo run's tasks' and its own."""
    import boto3

    sfn = boto3.session.Session().client("stepfunctions", endpoint_url=stack.moto_url, region_name="us-east-1")
    settings = stack.services.settings
    client = driver_client(stack.api_url, stack.admin_key)
    task_ids = {t["id"] for t in client.get(f"/runs/{run_id}/tasks?limit=200")["items"]}
    entered: Counter = Counter()
    executions = 0
    for machine, names in ((settings.task_state_machine_arn, task_ids), (settings.run_state_machine_arn, {run_id})):
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
            for execution in page["executions"]:
                if execution["name"] not in names:
                    continue
                executions += 1
                for history in sfn.get_paginator("get_execution_history").paginate(
                        executionArn=execution["executionArn"]):
                    entered.update(e["stateEnteredEventDetails"]["name"] for e in history["events"]
                                   if e["type"].endswith("StateEntered"))
    return entered, executions


def largest_items(table_name: str) -> dict[str, int]:
    """The largest item of each key shape in moto's table (what a write of it costs per KB)."""
    from moto.dynamodb.models import dynamodb_backends

    from bench.meter import MOTO_ACCOUNT, _key

    table = dynamodb_backends[MOTO_ACCOUNT]["us-east-1"].tables[table_name]
    largest: dict[str, int] = {}
    for partition in list(table.items.values()):
        for item in list(partition.values()) if isinstance(partition, dict) else [partition]:
            kind = _key({k: v.to_json() if hasattr(v, "to_json") else {"S": str(v.value)} for k, v in item.attrs.items()
                         if k in ("pk", "sk")})
            largest[kind] = max(largest.get(kind, 0), item.size())
    return largest


def item_sizes(largest: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(largest.items(), key=lambda kv: -kv[1])[:6]


def main() -> int:
    meter = AwsMeter(dynamo_units=True)
    lambdas = LambdaMeter(meter)
    from chalicelib.demo.run import run_demo

    with local_stack(meter=meter, lambdas=lambdas, sweep_seconds=5) as stack:
        meter.take()
        lambdas.take()
        client = driver_client(stack.api_url, stack.admin_key)
        began = time.monotonic()
        result = run_demo(client, Path(stack.workdir), lambda line: None, watcher(client))
        seconds = time.monotonic() - began
        time.sleep(1.5)   # the last callbacks and the run's end reach Step Functions
        meter_calls = meter.take()
        invocations = lambdas.take()
        transitions, executions = transitions_of_demo(stack, result["run"]["id"])
        stack_sizes = largest_items(stack.services.settings.table_name)

    if result["run"]["status"] != "succeeded":
        print(f"the demo run ended {result['run']['status']}: no cost figure", file=sys.stderr)
        return 1
    memory = memory_sizes()
    counted = [i for i in invocations if i.phase in ("", "run")]
    left_out = Counter(i.phase for i in invocations if i.phase not in ("", "run"))
    stage_jobs = sum(1 for i in counted if i.function == "api_handler" and i.what.endswith("/advance"))
    in_invocations = {id(c) for i in invocations for c in i.calls}
    background = [c for c in meter_calls if id(c) not in in_invocations]
    sweeper = [c for c in background if c.scope == "sweeper"]
    idle_polls = [c for c in background if c.label == "sqs:ReceiveMessage" and not c.items_read]
    stream_reads = [c for c in background if c.service in FREE_CALLS]   # the event source's, free
    outside = [c for c in background if c.scope != "sweeper" and c not in idle_polls and c not in stream_reads]
    counted_calls = [c for i in counted for c in i.calls] + outside

    usage = usage_of(counted, outside, memory)
    usage["standard state transition"] = sum(transitions.values())
    usage["PUT/COPY/POST/LIST request"] += meter.presigned["post_object"] + meter.presigned["put_object"]
    usage["GET/HEAD request"] += meter.presigned["get_object"]

    by_service: dict[str, float] = defaultdict(float)
    rows = []
    for unit, price in PRICES.items():
        per_1000 = usage[unit] / stage_jobs * 1000
        cost = per_1000 * price.usd
        by_service[price.service] += cost
        rows.append([price.service, unit, f"{usage[unit]:,.1f}", f"{per_1000:,.0f}", f"${price.usd * 1e6:,.4g}",
                     f"${cost:.4f}"])
    total = sum(by_service.values())

    print("## Cost per 1,000 task-stages (demo pipeline, local stack, AWS list prices)\n")
    print(f"One `baton demo` run: {stage_jobs} stage jobs (task-stages), {executions} executions, {seconds:.0f} s; "
          f"{len(counted)} Lambda invocations counted ({sum(1 for i in counted if i.function == 'api_handler')} API "
          f"requests, {sum(1 for i in counted if i.function == 'dispatch')} dispatch batches, "
          f"{sum(1 for i in counted if i.function == 'publish')} publish batches from the table's stream). Left out: "
          + ", ".join(f"{n} {phase} requests" for phase, n in sorted(left_out.items()))
          + f", {len(sweeper)} sweeper calls, {len(idle_polls)} empty long polls of the queue, {len(stream_reads)} "
          f"reads of the table's stream by the event source (free).\n")
    print_table(["service", "unit", "in the run", "per 1,000 task-stages", "price per million", "per 1,000"], rows)
    print(f"\nPrices: {PRICES_AS_OF}; sources in bench/prices.py.\n")
    shares = sorted(by_service.items(), key=lambda kv: -kv[1])
    print_table(["service", "per 1,000 task-stages", "share"],
                [[s, f"${c:.4f}", f"{c / total:.0%}"] for s, c in shares] + [["**total**", f"**${total:.3f}**", ""]])
    print(f"\n**${total:.3f} per 1,000 task-stages** (our estimate before: about ${ESTIMATE_BEFORE:.2f}; aim "
          f"${AIM:.2f}). Dominant: {shares[0][0]} ({shares[0][1] / total:.0%}), then {shares[1][0]} "
          f"({shares[1][1] / total:.0%}).")

    per_stage_requests = Counter(i.what for i in counted if i.function == "api_handler")
    print(f"\nAPI requests per task-stage: {usage['REST API request'] / stage_jobs:.1f}: "
          + ", ".join(f"{what} {n / stage_jobs:.2f}" for what, n in per_stage_requests.most_common()))
    per_op = Counter(c.label for c in counted_calls)
    print(f"AWS calls per task-stage: {len(counted_calls) / stage_jobs:.1f}: "
          + ", ".join(f"{op} {n / stage_jobs:.2f}" for op, n in per_op.most_common(10)))
    wru_by_item: Counter = Counter()
    for c in counted_calls:
        wru_by_item.update(c.wru_by_item)
    print(f"DynamoDB per task-stage: {usage['write request unit'] / stage_jobs:.1f} WRU, by item written: "
          + ", ".join(f"{item} {w / stage_jobs:.1f}" for item, w in wru_by_item.most_common(8))
          + f"; {usage['read request unit'] / stage_jobs:.1f} RRU.")
    sizes = item_sizes(stack_sizes)
    if sizes:
        print("Item sizes at the end of the run (bytes, largest of each kind): "
              + ", ".join(f"{kind} {size:,}" for kind, size in sizes))
    api = [i for i in counted if i.function == "api_handler"]
    print(f"Lambda: mean billed {sum(billed_ms(i, memory[i.function]) for i in api) / len(api):.0f} ms per API "
          f"invocation at {memory['api_handler']} MB (measured CPU {sum(i.cpu_ms for i in api) / len(api):.1f} ms × "
          f"{max(1.0, FULL_VCPU_MB / memory['api_handler']):.2f} for the vCPU share, plus assumed AWS call "
          f"latencies: {', '.join(f'{s}:{o} {ms:g} ms' for (s, o), ms in ASSUMED_CALL_MS.items())}).")
    print(f"Step Functions: {sum(transitions.values())} transitions in {executions} executions = "
          f"{sum(transitions.values()) / stage_jobs:.2f} per task-stage ("
          + ", ".join(f"{name} {n}" for name, n in transitions.most_common()) + ").")
    levers(counted, counted_calls, transitions, memory, stage_jobs, total)
    sweep_calls = Counter(c.label for c in sweeper)
    print(f"\nFixed, whatever the load (not in the figure): the sweeper runs every minute on AWS; here it made "
          f"{len(sweeper)} calls ({', '.join(f'{k}×{v}' for k, v in sweep_calls.most_common())}) while the stack "
          f"ran. The event source's empty long polls are fixed too.")
    record_summary("cost", [{"figure": "cost per 1,000 task-stages (demo run)", "measured": f"${total:.3f}",
                             "minimum": f"aim ${AIM:.2f}"}])
    return report_scans([f"{c.scope} {c.detail}".strip() for c in scans(meter_calls + [c for i in invocations
                                                                                     for c in i.calls])])


if __name__ == "__main__":
    sys.exit(main())
