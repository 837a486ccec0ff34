"""Claim and progress read the same number of items however deep the queue is.

    .venv/bin/python bench/queue_depth.py [--deep 10000]

One run of 100 tasks is measured with 100 tasks queued in its project, then again once other runs
of the same project have queued 10,000 tasks in all (``--deep``): a claim by run id, a claim by
project, and the run's progress. Items read are DynamoDB's own count (a Query's ScannedCount, the
items a GetItem/BatchGetItem returned), request units as DynamoDB would bill them
(``bench/meter.py``). Moto in-process, ``BATON_ORCHESTRATION=plain`` (tasks are claimable as soon as
they are written, so 10,000 of them need no 10,000 executions); the tasks are created through the
API (``POST /projects/{id}/runs``, 1,000 per request), the same path as production.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import InProcess, print_table, record_summary, report_scans, scans  # noqa: E402
from bench.meter import Call, fmt_calls, summarize  # noqa: E402

PROJECT = "depth"
BATCH = 1000   # tasks per POST /projects/{id}/runs (the API's maximum)


def measure(bench: InProcess, agent: str, run_id: str) -> dict[str, list[Call]]:
    claim_run = bench.ok("POST", "/queue/claim", {"stage": "dev", "agent_id": "a", "run_id": run_id}, key=agent)
    claim_project = bench.ok("POST", "/queue/claim", {"stage": "dev", "agent_id": "a", "project_id": PROJECT},
                             key=agent)
    progress = bench.ok("GET", f"/runs/{run_id}/progress", key=agent)
    return {"POST /queue/claim (by run)": claim_run.calls, "POST /queue/claim (by project)": claim_project.calls,
            "GET /runs/{id}/progress": progress.calls}


def start_runs(bench: InProcess, count: int, title: str) -> tuple[list[str], float]:
    ids, began = [], time.perf_counter()
    while count > 0:
        size = min(BATCH, count)
        ids.append(bench.ok("POST", f"/projects/{PROJECT}/runs", {
            "title": title, "deploy_gate": False, "parallelism": 100,
            "tasks": [{"title": f"{title} {i}"} for i in range(size)]}, expect=201).body["id"])
        count -= size
    bench.meter.take()
    return ids, time.perf_counter() - began


def queued(bench: InProcess, run_id: str) -> int:
    return int(bench.ok("GET", f"/runs/{run_id}/progress").body.get("by_status", {}).get("queued", -1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shallow", type=int, default=100, help="tasks of the measured run (default 100)")
    parser.add_argument("--deep", type=int, default=10_000, help="queued tasks in the project at depth (default 10000)")
    args = parser.parse_args()

    with InProcess("plain") as bench:
        bench.ok("GET", "/roles")
        agent = bench.ok("POST", "/keys", {"name": "agent", "principal": "agent", "project_ids": [PROJECT]},
                         expect=201).body["key"]
        bench.ok("POST", "/projects", {"id": PROJECT, "name": "Depth", "repository_url": "https://example.com/d.git"},
                 expect=201)
        (run_id,), _ = start_runs(bench, args.shallow, "measured")
        shallow = measure(bench, agent, run_id)
        queued_shallow = args.shallow
        _, seconds = start_runs(bench, args.deep - args.shallow, "other")
        deep = measure(bench, agent, run_id)
        queued_deep = args.deep - 2      # the two claims of the first measurement took two tasks
        measured_queue = queued(bench, run_id)

    print("## Claim and progress at queue depth\n")
    print(f"moto in-process, plain orchestration; project {PROJECT!r}: the measured run has {args.shallow} tasks; "
          f"{args.deep - args.shallow:,} more were queued in other runs of the project through the API in "
          f"{seconds:.0f} s ({(args.deep - args.shallow) / seconds:.0f} tasks/s). The measured run still had "
          f"{measured_queue} queued when measured at depth.\n")
    rows, summary, found = [], [], []
    for label in shallow:
        a, b = shallow[label], deep[label]
        items_a, items_b = sum(c.items_read for c in a), sum(c.items_read for c in b)
        rru_a, rru_b = sum(c.rru for c in a), sum(c.rru for c in b)
        found += [label for c in a + b if scans([c])]
        same = "yes" if items_a == items_b and len(a) == len(b) else "**no**"
        rows.append([label, f"{items_a} items, {rru_a:g} RRU, {len(a)} calls",
                     f"{items_b} items, {rru_b:g} RRU, {len(b)} calls", same, fmt_calls(summarize(b))])
        summary.append({"figure": f"items read: {label}, {queued_shallow} → {queued_deep:,} queued",
                        "measured": f"{items_a} → {items_b}", "minimum": "the same at both depths"})
    print_table(["request", f"{queued_shallow} queued", f"{queued_deep:,} queued", "same", "calls at depth"], rows)
    print("\nItems read: a Query's ScannedCount (claim reads at most one page of candidates), the items a "
          "GetItem returned (the API key, the run with its counters).")
    record_summary("queue_depth", summary)
    return report_scans(found)


if __name__ == "__main__":
    sys.exit(main())
