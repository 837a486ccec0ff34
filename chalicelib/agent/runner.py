"""The agent runner: the container entrypoint, and what the local executor starts per job.

It claims the job's task, runs the role's command in a scratch working directory while sending
heartbeats, keeps the command's output, and advances the task: ``pass`` when the command exits 0,
``fail`` otherwise. It reads the job from ``BATON_JOB`` and its credentials from
``BATON_API_URL``/``BATON_API_KEY`` (a job-scoped key that only works for this task).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

from .client import ApiError, BatonClient


def log(message: str) -> None:
    print(f"[baton-runner] {message}", flush=True)


class Heartbeat(threading.Thread):
    """Extends the lease every ``interval`` seconds; stops (and records why) if the lease is lost."""

    def __init__(self, client: BatonClient, task_id: str, claim_id: str, interval: float, lease_seconds: int):
        super().__init__(daemon=True)
        self.client = client
        self.task_id = task_id
        self.claim_id = claim_id
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.stopped = threading.Event()
        self.lost: Optional[str] = None

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.client.post(f"/tasks/{self.task_id}/heartbeat",
                                 {"claim_id": self.claim_id, "lease_seconds": self.lease_seconds})
            except ApiError as error:
                if error.status == 409:
                    self.lost = error.message
                    return
                log(f"heartbeat failed, will retry: {error}")


def run_command(command: str, cwd: Path, env: dict[str, str], output_path: Path, timeout: int,
                beat: Heartbeat) -> int:
    """Run the agent's command; stop it when it overruns or when the lease is lost (the task
    was cancelled, or re-dispatched to someone else)."""
    deadline = time.monotonic() + timeout
    with open(output_path, "wb") as output:
        process = subprocess.Popen(command, shell=True, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            while True:
                try:
                    return process.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    pass
                if beat.lost or time.monotonic() > deadline:
                    reason = "lease lost" if beat.lost else "timed out"
                    output.write(f"\n[baton-runner] stopping the agent: {reason}\n".encode())
                    os.killpg(process.pid, 15)
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        os.killpg(process.pid, 9)
                    return 124
        finally:
            beat.stopped.set()


def run_job(job: dict[str, Any], client: BatonClient, workdir: Optional[Path] = None) -> int:
    task_id, stage = job["task_id"], job["stage"]
    heartbeat_seconds = int(job.get("heartbeat_seconds") or 60)
    lease_seconds = max(30, heartbeat_seconds * 2)
    status, claimed = client.post_status("/queue/claim", {"stage": stage, "agent_id": job["job_id"],
                                                          "task_id": task_id, "lease_seconds": lease_seconds})
    if status == 204 or not claimed:
        log(f"task {task_id} is not waiting at stage {stage}; nothing to do")
        return 0
    task, claim_id = claimed["task"], claimed["claim"]["claim_id"]
    log(f"claimed task {task_id} ({task['title']!r}) at stage {stage}, iteration {task['iteration']}")
    work = Path(workdir or tempfile.mkdtemp(prefix=f"baton-{task_id}-"))
    proofs = work / "proofs"
    proofs.mkdir(parents=True, exist_ok=True)
    beat = Heartbeat(client, task_id, claim_id, max(1.0, heartbeat_seconds / 3), lease_seconds)
    beat.start()
    env = {**os.environ, "BATON_TASK_ID": task_id, "BATON_RUN_ID": task["run_id"],
           "BATON_PROJECT_ID": task["project_id"], "BATON_STAGE": stage, "BATON_ITERATION": str(task["iteration"]),
           "BATON_ATTEMPT": str(job.get("attempt", 1)), "BATON_TASK_TITLE": task["title"],
           "BATON_TASK_DESCRIPTION": task.get("description", ""), "BATON_WORKDIR": str(work),
           "BATON_PROOFS_DIR": str(proofs), "BATON_RUNNER_PID": str(os.getpid())}
    env.pop("BATON_API_KEY", None)  # the agent's own command never sees Baton's credentials
    command = job.get("command") or "true"
    timeout = int(job.get("timeout_seconds") or 3600)
    output_path = proofs / "agent-output.log"
    started = time.monotonic()
    exit_code = run_command(command, work, env, output_path, timeout, beat)
    if beat.lost:
        log(f"lost the lease while working ({beat.lost}); not advancing")
        return 3
    tail = output_path.read_text(errors="replace")[-2000:]
    result = "pass" if exit_code == 0 else "fail"
    notes = f"command exited {exit_code} after {time.monotonic() - started:.1f}s\n{tail}"
    try:
        client.post(f"/tasks/{task_id}/advance", {"claim_id": claim_id, "result": result, "notes": notes})
    except ApiError as error:
        log(f"advance refused: {error}")
        return 4
    log(f"advanced task {task_id}: {result}")
    return 0


def main() -> int:
    try:
        job = json.loads(os.environ["BATON_JOB"])
        client = BatonClient(os.environ["BATON_API_URL"], os.environ["BATON_API_KEY"])
    except (KeyError, ValueError) as error:
        log(f"missing or invalid job environment: {error}")
        return 2
    try:
        return run_job(job, client)
    except ApiError as error:
        log(f"the API refused: {error}")
        return 5


if __name__ == "__main__":
    sys.exit(main())
