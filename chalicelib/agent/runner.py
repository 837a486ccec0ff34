"""The agent runner: the container entrypoint, ``baton agent run``, and what the local executor
starts per job.

1. Fetch the task's context and the role config the run pinned; refuse on config drift.
2. Claim the task (a lease) and heartbeat while working.
3. Clone the project's repository on the task's branch (``baton/{run}/{task}``, created from the
   primary branch the first time) into a scratch working copy.
4. Render the role's prompt (task, latest handoff, proofs, findings) to ``prompt.md`` and run the
   role's command template (``{prompt_file}``, ``{repo_dir}``, ``{proofs_dir}``, ``{python}``).
5. Commit and push what the agent changed to the task branch.
6. Upload the agent's output (always, as a log proof) and everything it left in its proofs folder
   (type inferred: images → screenshot, JUnit XML → test_result, SARIF/bandit/bugs JSON → report,
   diffs → code_diff, logs), and submit reports as findings.
7. Post the handoff (the agent's ``handoff.json``, or one made from the exit status and log tail),
   and advance ``pass`` (exit 0 and no critical/high findings) or ``fail``.

It reads the job from ``BATON_JOB`` and its credentials from ``BATON_API_URL``/``BATON_API_KEY``
(a job-scoped key that only works for this task).
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404  # runs git and agent commands by design
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

from .client import ApiError, BatonClient
from .work import (ConfigDriftError, classify, describe_file, prepare_repository, prompt_values, publish_changes,
                   render, task_branch, verify_role)


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
                if error.status == 409 and error.code in ("lease_not_held", "lease_expired", "task_cancelled"):
                    self.lost = error.message
                    return
                log(f"heartbeat failed, will retry: {error}")


def run_command(command: str, cwd: Path, env: dict[str, str], output_path: Path, timeout: int,
                beat: Heartbeat) -> int:
    """Run the agent's command; stop it when it overruns or when the lease is lost (the task
    was cancelled, or re-dispatched to someone else)."""
    deadline = time.monotonic() + timeout
    with open(output_path, "wb") as output:
        process = subprocess.Popen(command, shell=True, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,  # nosec B602  # the role's command template is the agent by design (admin-set, run in the agent's sandbox)
                                   stdin=subprocess.DEVNULL, start_new_session=True)
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


STAGE_ROLE = {"dev": "dev", "qa": "qa", "sec": "security", "docs": "docs", "cicd": "cicd"}


def next_role(context: dict[str, Any], passed: bool) -> str:
    stage = context["task"]["stage"]
    if not passed:
        return "dev"
    stages = ["cicd"] if context["task"].get("source") == "release" else list(context["run"]["stages"])
    later = stages[stages.index(stage) + 1:] if stage in stages else []
    return STAGE_ROLE[later[0]] if later else ("director" if stage == "cicd" else "cicd")


def upload_proof(client: BatonClient, task_id: str, path: Path, proof_type: str) -> dict[str, Any]:
    from .transfer import upload_presigned_post

    described = describe_file(path)
    declared = client.post(f"/tasks/{task_id}/proofs", {
        "type": proof_type, "filename": described["filename"], "content_type": described["content_type"],
        "size": described["size"], "sha256": described["sha256"]})
    form = declared["upload"]
    upload_presigned_post(form["url"], form.get("fields") or {}, described["filename"], described["content_type"],
                          described["data"])
    return client.post(f"/proofs/{declared['proof']['id']}/confirm")


def run_job(job: dict[str, Any], client: BatonClient, workdir: Optional[Path] = None) -> int:
    task_id, stage = job["task_id"], job["stage"]
    context = client.get(f"/tasks/{task_id}/context")
    role = context.get("role")
    if role is None or context["task"]["stage"] != stage:
        log(f"task {task_id} is no longer at stage {stage}; nothing to do")
        return 0
    try:
        config = verify_role(context, client.get(f"/roles/{role['role']}/versions")["items"], job)
    except ConfigDriftError as drift:
        log(f"refusing to work: config drift: {drift}")
        return 7
    heartbeat_seconds = int(config.get("heartbeat_seconds") or job.get("heartbeat_seconds") or 60)
    lease_seconds = max(30, heartbeat_seconds * 2)
    status, claimed = client.post_status("/queue/claim", {"stage": stage, "agent_id": job["job_id"],
                                                          "task_id": task_id, "lease_seconds": lease_seconds})
    if status == 204 or not claimed:
        log(f"task {task_id} is not waiting at stage {stage}; nothing to do")
        return 0
    task, claim_id = claimed["task"], claimed["claim"]["claim_id"]
    log(f"claimed task {task_id} ({task['title']!r}) at stage {stage}, iteration {task['iteration']}")
    beat = Heartbeat(client, task_id, claim_id, max(1.0, heartbeat_seconds / 3), lease_seconds)
    beat.start()
    work = Path(workdir or tempfile.mkdtemp(prefix=f"baton-{task_id}-"))
    proofs_dir, repo = work / "proofs", work / "repo"
    proofs_dir.mkdir(parents=True, exist_ok=True)
    project = context["project"]
    branch = task_branch(task["run_id"], task_id)
    notes: list[str] = []
    try:
        notes.append(prepare_repository(project["repository_url"], project.get("primary_branch", "main"),
                                        branch, repo))
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        repo.mkdir(exist_ok=True)
        notes.append(f"no working copy: {error}")
    prompt_file = work / "prompt.md"
    prompt_file.write_text(render(config["prompt"], prompt_values(context, proofs_dir)))
    command = render(config.get("command") or job.get("command") or "true", {
        "prompt_file": str(prompt_file), "repo_dir": str(repo), "proofs_dir": str(proofs_dir),
        "python": sys.executable, "task_id": task_id, "stage": stage})
    env = {**os.environ, "BATON_TASK_ID": task_id, "BATON_RUN_ID": task["run_id"],
           "BATON_PROJECT_ID": task["project_id"], "BATON_STAGE": stage, "BATON_ITERATION": str(task["iteration"]),
           "BATON_ATTEMPT": str(job.get("attempt", 1)), "BATON_TASK_TITLE": task["title"],
           "BATON_TASK_DESCRIPTION": task.get("description", ""), "BATON_WORKDIR": str(work),
           "BATON_REPO_DIR": str(repo), "BATON_PROOFS_DIR": str(proofs_dir), "BATON_PROMPT_FILE": str(prompt_file),
           "BATON_PRIMARY_BRANCH": project.get("primary_branch", "main"), "BATON_RUNNER_PID": str(os.getpid())}
    env.pop("BATON_API_KEY", None)  # the agent's own command never sees Baton's credentials
    output_path = work / "agent-output.log"
    started = time.monotonic()
    exit_code = run_command(command, repo, env, output_path, int(config.get("timeout_seconds") or 3600), beat)
    if beat.lost:
        beat.stopped.set()
        log(f"lost the lease while working ({beat.lost}); not advancing")
        return 3
    notes.append(publish_changes(repo, branch, f"baton: {stage} of {task['title']} (iteration {task['iteration']})")
                 if (repo / ".git").exists() else "no repository to publish")
    passed = exit_code == 0
    proof_ids, verdicts = [], []
    files = [(output_path, ("log", None))] + [(p, classify(p)) for p in sorted(proofs_dir.rglob("*")) if p.is_file()]
    for path, kind in files:
        if kind is None or path.stat().st_size == 0:
            continue
        proof_type, report_format = kind
        try:
            stored = upload_proof(client, task_id, path, proof_type)
            proof_ids.append(stored["id"])
            if report_format:
                result = client.post(f"/tasks/{task_id}/findings", {"format": report_format, "proof_id": stored["id"]})
                verdicts.append(result["verdict"])
                notes.append(f"{path.name}: {result['findings']} finding(s), {len(result['created_tasks'])} fix task(s)")
        except ApiError as error:
            notes.append(f"{path.name} not kept: {error.message}")
    if "fail" in verdicts:
        passed = False
        notes.append("a report has critical or high findings: the stage fails")
    tail = output_path.read_text(errors="replace")[-1500:] if output_path.exists() else ""
    handoff = build_handoff(proofs_dir / "handoff.json", context, passed, exit_code, tail, proof_ids, notes)
    try:
        client.post(f"/tasks/{task_id}/handoffs", handoff)
    except ApiError as error:
        log(f"handoff not recorded: {error}")
    summary = f"command exited {exit_code} after {time.monotonic() - started:.1f}s; " + "; ".join(notes)
    try:
        return advance(client, task_id, claim_id, passed, summary[:9000])
    finally:
        beat.stopped.set()   # heartbeats run until the stage is handed back, uploads included


def build_handoff(path: Path, context: dict[str, Any], passed: bool, exit_code: int, tail: str,
                  proof_ids: list[str], notes: list[str]) -> dict[str, Any]:
    """The agent's own handoff.json when it wrote one, else one made from the exit and the log tail."""
    from_role = STAGE_ROLE[context["task"]["stage"]]
    written: dict[str, Any] = {}
    if path.exists():
        try:
            written = json.loads(path.read_text())
        except ValueError:
            notes.append("handoff.json is not valid JSON; a generated handoff was sent instead")
    base = {"from_role": from_role, "to_role": next_role(context, passed),
            "summary": f"{from_role} {'passed' if passed else 'failed'} (exit {exit_code}).",
            "work_done": [], "decisions": [], "notes_for_next": tail[-4000:], "learnings": [], "open_questions": [],
            "resume_prompt": f"Resume {context['task']['title']!r} at the next stage.",
            "confidence": "medium" if passed else "low"}
    allowed = set(base) | {"proof_ids"}
    handoff = {**base, **{k: v for k, v in written.items() if k in allowed}}
    handoff["from_role"] = from_role   # the runner knows who it is
    handoff["proof_ids"] = proof_ids
    return handoff


def advance(client: BatonClient, task_id: str, claim_id: str, passed: bool, notes: str) -> int:
    result = "pass" if passed else "fail"
    try:
        client.post(f"/tasks/{task_id}/advance", {"claim_id": claim_id, "result": result, "notes": notes})
    except ApiError as error:
        if error.status == 422 and passed:
            log(f"cannot pass: {error.message}; failing the stage instead")
            return advance(client, task_id, claim_id, False, f"{notes}\n{error.message}")
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
    except Exception as error:  # never a silent death: say what broke, the job is re-dispatched
        log(f"the runner failed: {type(error).__name__}: {error}")
        raise


if __name__ == "__main__":
    sys.exit(main())
