"""AWS calls per endpoint, next to the design minimum: one representative request per endpoint,
through the Chalice app, against moto in-process with Step Functions executing (as on AWS: the
dispatcher is fed from the SQS queue the executions write to).

    .venv/bin/python bench/roundtrips.py [--explain]    # --explain: each request's calls in order

Every botocore client in the process is hooked (``bench/meter.py``); a request's calls are the
ones made inside its Lambda invocation, the API-key lookup of the auth middleware included
(column "auth"). The stage flow runs twice: with an agent key (the minimum is stated for it) and
with a job token, whose every request also reads the task (the token dies with its job).

Any Scan is flagged: the store promises only GetItem/Query reads, so the script exits 2 then.
Counts only: moto's timings say nothing about DynamoDB's.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import InProcess, Response, print_table, record_summary, report_scans, scans  # noqa: E402
from bench.meter import Call, fmt_calls, summarize  # noqa: E402

# The design's minimum for an agent key, and why. Job tokens add one GetItem (the task's liveness).
MINIMUM: dict[str, tuple[int, str]] = {
    "GET /status": (0, "no AWS"),
    "POST /queue/claim (by project)": (3, "key lookup, one Query of the queue index, one conditional write"),
    "POST /queue/claim (by run)": (3, "key lookup, one Query of the run's queue index, one conditional write"),
    "POST /queue/claim (by run, run not in this container's hints)": (
        4, "key lookup, the run item (its event sequence), one Query, one conditional write"),
    "POST /tasks/{id}/heartbeat": (2, "key lookup, one conditional write on owner and lease: no read"),
    "GET /runs/{id}/progress": (2, "key lookup, the run item (counters on it)"),
    "GET /runs/{id}": (2, "key lookup, the run item"),
    "GET /tasks/{id}": (2, "key lookup, the task item"),
    "GET /projects/{id}": (2, "key lookup, the project item"),
    "GET /tasks/{id}/context": (5, "key lookup, three bounded Queries of the task's partition (the task with its "
                                   "latest jobs, the latest handoffs, the latest proofs), one BatchGetItem (run, "
                                   "project, settings); the pinned role version is read once per container"),
}
JOB_TOKEN_EXTRA = 1


class Rows:
    def __init__(self) -> None:
        self.rows: list[tuple[str, int, list[Call]]] = []

    def add(self, label: str, response: Response) -> Response:
        self.rows.append((label, response.status, response.calls))
        return response


def claimed(bench: InProcess, body: dict[str, Any], key: str, headers: Optional[dict[str, str]] = None) -> Response:
    """The first claim that finds a dispatched task (the executions dispatch asynchronously)."""
    def attempt() -> Optional[Response]:
        response = bench.request("POST", "/queue/claim", body, key, headers)
        if response.status == 204:
            return None
        if response.status != 200:
            raise SystemExit(f"claim: {response.status} {response.body}")
        return response
    return bench.until(attempt)


def upload_proof(bench: InProcess, rows: Rows, task_id: str, key: str, headers: dict[str, str], suffix: str) -> None:
    data = b"--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    declared = rows.add(f"POST /tasks/{{id}}/proofs (declare){suffix}", bench.ok(
        "POST", f"/tasks/{task_id}/proofs", {"type": "code_diff", "filename": "change.diff",
                                             "content_type": "text/x-diff", "size": len(data),
                                             "sha256": hashlib.sha256(data).hexdigest()},
        key=key, expect=201, headers=headers)).body
    # The agent's upload goes to S3 with the presigned form, not through Baton: not counted here.
    import boto3

    boto3.client("s3").put_object(Bucket=bench.resources.bucket, Key=declared["upload"]["fields"]["key"], Body=data,
                                  ContentType="text/x-diff")
    rows.add(f"POST /proofs/{{id}}/confirm{suffix}", bench.ok("POST", f"/proofs/{declared['proof']['id']}/confirm",
                                                             key=key, headers=headers))


def handoff(from_role: str, to_role: str) -> dict[str, Any]:
    return {"from_role": from_role, "to_role": to_role, "summary": "bench", "confidence": "high"}


# The publish function's invocations after the first claim (the table's stream, off the request path).
PUBLISHED: list[Any] = []


def agent_key_flow(bench: InProcess, rows: Rows) -> None:
    ok = bench.ok
    rows.add("GET /status", ok("GET", "/status", key=""))
    agent = rows.add("POST /keys", ok("POST", "/keys", {"name": "agent-1", "principal": "agent",
                                                        "project_ids": ["demo"]}, expect=201)).body["key"]
    rows.add("GET /keys", ok("GET", "/keys"))
    rows.add("POST /projects", ok("POST", "/projects", {"id": "demo", "name": "Demo",
                                                        "repository_url": "https://example.com/demo.git"}, expect=201))
    rows.add("GET /projects", ok("GET", "/projects"))
    rows.add("GET /projects/{id}", ok("GET", "/projects/demo"))
    rows.add("PATCH /projects/{id}", ok("PATCH", "/projects/demo", {"name": "Demo project"}))
    run_id = rows.add("POST /projects/{id}/runs (3 tasks)", ok(
        "POST", "/projects/demo/runs", {"title": "bench", "deploy_gate": False, "parallelism": 3,
                                        "tasks": [{"title": f"task {i}"} for i in range(3)]}, expect=201)).body["id"]
    rows.add("GET /projects/{id}/runs", ok("GET", "/projects/demo/runs"))
    rows.add("GET /runs/{id}", ok("GET", f"/runs/{run_id}"))
    rows.add("GET /runs/{id}/progress", ok("GET", f"/runs/{run_id}/progress"))
    rows.add("GET /runs/{id}/tasks", ok("GET", f"/runs/{run_id}/tasks"))
    rows.add("GET /runs/{id}/events", ok("GET", f"/runs/{run_id}/events"))

    bench.publish()   # what the run's start published, not counted: the claim's own publication is, below
    dev = rows.add("POST /queue/claim (by project)", claimed(bench, {"stage": "dev", "agent_id": "agent-1",
                                                                      "project_id": "demo"}, agent)).body
    PUBLISHED.extend(bench.publish())
    task_id, claim_id = dev["task"]["id"], dev["claim"]["claim_id"]
    under_claim = {"Baton-Claim": claim_id}
    rows.add("POST /tasks/{id}/heartbeat", ok("POST", f"/tasks/{task_id}/heartbeat", {"claim_id": claim_id}, key=agent))
    rows.add("GET /tasks/{id}/context", ok("GET", f"/tasks/{task_id}/context", key=agent, headers=under_claim))
    upload_proof(bench, rows, task_id, agent, under_claim, "")
    rows.add("POST /tasks/{id}/handoffs", ok("POST", f"/tasks/{task_id}/handoffs", handoff("dev", "qa"), key=agent,
                                             expect=201, headers=under_claim))
    rows.add("POST /tasks/{id}/advance (pass: dev → qa)", ok("POST", f"/tasks/{task_id}/advance",
                                                            {"claim_id": claim_id, "result": "pass"}, key=agent))
    qa = rows.add("POST /queue/claim (by run)", claimed(bench, {"stage": "qa", "agent_id": "agent-1", "run_id": run_id},
                                                         agent)).body
    rows.add("POST /tasks/{id}/advance (fail: back to dev)", ok(
        "POST", f"/tasks/{qa['task']['id']}/advance", {"claim_id": qa["claim"]["claim_id"], "result": "fail",
                                                       "notes": "tests fail"}, key=agent))
    # A Lambda container that has not committed to this run lately has no hint of it: one GetItem more.
    from chalicelib import bootstrap

    bootstrap.get_services().repos.audit.hints.drop(run_id)
    rows.add("POST /queue/claim (by run, run not in this container's hints)", claimed(
        bench, {"stage": "dev", "agent_id": "agent-1", "run_id": run_id}, agent))
    rows.add("POST /runs/{id}/tasks", ok("POST", f"/runs/{run_id}/tasks", {"title": "one more"}, expect=201))
    other = next(t["id"] for t in ok("GET", f"/runs/{run_id}/tasks").body["items"] if t["id"] != task_id)
    rows.add("GET /tasks/{id}", ok("GET", f"/tasks/{other}"))
    rows.add("POST /tasks/{id}/stage", ok("POST", f"/tasks/{other}/stage", {"stage": "docs", "reason": "bench"}))
    agent_id = next(k["id"] for k in ok("GET", "/keys").body["items"] if k["name"] == "agent-1")
    rows.add("DELETE /keys/{id}", ok("DELETE", f"/keys/{agent_id}"))
    rows.add("DELETE /runs/{id} (kill, open tasks)", ok("DELETE", f"/runs/{run_id}"))


def job_token_flow(bench: InProcess, rows: Rows) -> None:
    """A container job as its runner works it: launch code → job token → claim → work → advance."""
    ok = bench.ok
    dev = ok("GET", "/roles/dev").body
    ok("PUT", "/roles/dev", {"prompt": dev["prompt"], "executor": "container", "command": "true",
                             "required_proofs": ["code_diff"]})
    run_id = ok("POST", "/projects/demo/runs", {"title": "bench jobs", "deploy_gate": False, "parallelism": 1,
                                                "tasks": [{"title": "job task"}]}, expect=201).body["id"]
    specs = bench.launcher.specs
    bench.until(lambda: Response(200, None, None) if any(s["run_id"] == run_id for s in specs) else None)
    spec = next(s for s in specs if s["run_id"] == run_id)
    redeemed = rows.add("POST /jobs/{id}/token (launch code)", ok("POST", f"/jobs/{spec['job_id']}/token",
                                                                   key=spec["launch_code"], expect=201)).body
    token, task_id = redeemed["token"], spec["task_id"]
    rows.add("GET /tasks/{id}/context", ok("GET", f"/tasks/{task_id}/context", key=token))
    claim = rows.add("POST /queue/claim (its own job)", ok("POST", "/queue/claim", {
        "stage": "dev", "agent_id": spec["job_id"], "task_id": task_id, "lease_seconds": 60}, key=token)).body
    claim_id = claim["claim"]["claim_id"]
    rows.add("POST /tasks/{id}/heartbeat", ok("POST", f"/tasks/{task_id}/heartbeat", {"claim_id": claim_id}, key=token))
    upload_proof(bench, rows, task_id, token, {}, "")
    rows.add("POST /tasks/{id}/handoffs", ok("POST", f"/tasks/{task_id}/handoffs", handoff("dev", "qa"), key=token,
                                             expect=201))
    rows.add("POST /tasks/{id}/advance (pass: dev → qa)", ok("POST", f"/tasks/{task_id}/advance",
                                                            {"claim_id": claim_id, "result": "pass"}, key=token))


def render(rows: Rows, extra: int = 0) -> tuple[list[list[Any]], list[str]]:
    table, found = [], []
    for label, status, calls in rows.rows:
        counts = summarize(calls)
        auth = summarize(c for c in calls if c.scope == "auth")
        flag = " **⚠ SCAN**" if scans(calls) else ""
        if flag:
            found.append(label)
        base = MINIMUM.get(label)
        minimum = "–" if base is None else str(base[0] + (extra if base[0] else 0))
        total = sum(counts.values())
        over = "" if base is None else ("=" if total == int(minimum) else f"+{total - int(minimum)}")
        table.append([label, status, fmt_calls(counts) + flag, total, minimum, over, fmt_calls(auth)])
    return table, found


def explain(rows: Rows) -> None:
    for label, _, calls in rows.rows:
        if calls:
            print(f"* {label}: " + "; ".join(f"{c.label} {c.target}".strip() + (" (auth)" if c.scope == "auth" else "")
                                             for c in calls))


def publish_off_the_request_path() -> None:
    """What the audited requests no longer do themselves: their PublishEvents outbox records reach
    the publish function through the table's DynamoDB Stream (its reads by Lambda are free)."""
    calls = [c for i in PUBLISHED for c in i.calls]
    records = sum(1 for c in calls if c.label == "events:PutEvents")
    print("\n### Off the request path: the publish function (table stream → EventBridge, webhooks)\n")
    if not PUBLISHED:
        print("No publication reached the publish function.")
        return
    print_table(["publications", "invocations", "AWS calls", "total", "per publication"],
                [[records, len(PUBLISHED), fmt_calls(summarize(calls)), len(calls), f"{len(calls) / max(records, 1):g}"]])
    print("\nThe publications committed from the run's start to the first claim (the dispatcher's and the claim's), "
          "delivered by one invocation of the publish function. Per publication: its event on the bus (PutEvents), "
          "the project's webhooks (one Query of gsi1; a matching webhook adds a PutItem per delivery and one "
          "SendMessageBatch), the record deleted (DeleteItem). Not counted: the event source's reads of the "
          "stream (free).")


def main() -> int:
    explaining = "--explain" in sys.argv
    agent_rows, job_rows = Rows(), Rows()
    with InProcess("stepfunctions") as bench:
        authenticate = bench.services.keys.authenticate

        def counted_authenticate(*args: Any, **kwargs: Any) -> Any:
            with bench.meter.scope("auth"):
                return authenticate(*args, **kwargs)

        bench.services.keys.authenticate = counted_authenticate  # type: ignore[method-assign]
        bench.ok("GET", "/roles")   # warm-up, not measured: the first read of the role configs writes them
        agent_key_flow(bench, agent_rows)
        job_token_flow(bench, job_rows)
        services = sorted({c.service for c in bench.meter.take()} | {"dynamodb"})

    header = ["endpoint", "HTTP", "AWS calls", "total", "design minimum", "over", "of which auth"]
    print("## AWS calls per request\n")
    print(f"moto in-process, Step Functions executing; services seen: {', '.join(services)}.\n")
    print("### With an agent key\n")
    table, found = render(agent_rows)
    print_table(header, table)
    print("\n### With a job token (a container job's runner): every request also reads the task\n")
    job_table, job_found = render(job_rows, extra=JOB_TOKEN_EXTRA)
    print_table(header, job_table)
    print("\nDesign minimums:")
    for label, (n, why) in MINIMUM.items():
        print(f"* {label} = {n}: {why}" + (f" (+{JOB_TOKEN_EXTRA} with a job token)" if n else ""))
    if explaining:
        print("\nEach request's calls, in order (DynamoDB: key prefixes or index):")
        explain(agent_rows)
        print("With a job token:")
        explain(job_rows)
    publish_off_the_request_path()
    all_calls = [c for _, _, calls in agent_rows.rows + job_rows.rows for c in calls]
    print(f"\n{len(agent_rows.rows) + len(job_rows.rows)} requests, {len(all_calls)} AWS calls in all.")

    headline = []
    for label in ("POST /tasks/{id}/heartbeat", "POST /queue/claim (by project)", "POST /queue/claim (by run)",
                  "GET /runs/{id}/progress"):
        calls = next(c for lbl, _, c in agent_rows.rows if lbl == label)
        headline.append({"figure": f"AWS calls: {label} (agent key)", "measured": len(calls),
                         "minimum": MINIMUM[label][0]})
    record_summary("roundtrips", headline)
    return report_scans(found + job_found)


if __name__ == "__main__":
    sys.exit(main())
