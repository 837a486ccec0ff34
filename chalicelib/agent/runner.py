"""The agent runner: the container entrypoint, ``baton agent run``, and what the local executor
starts per job.

1. Fetch the task's context and the role config the run pinned; refuse on config drift.
2. Claim the task (a lease) and heartbeat while working.
3. Clone the project's repository on the task's branch (``baton/{run}/{task}``, created from the
   primary branch the first time) into a scratch working copy.
4. Render the role's prompt (task, latest handoff, proofs, findings) to ``prompt.md`` and run the
   role's command template (``{prompt_file}``, ``{repo_dir}``, ``{proofs_dir}``, ``{python}``), with
   the task's source and inputs beside it (``BATON_TASK_SOURCE``, ``BATON_INPUTS``, ``inputs.json``).
   A role with ``session_paths`` gets its saved session back under HOME first, runs its
   ``resume_command`` when one was restored, and has it saved again while and after the command
   runs (:mod:`.sessions`); ``{session_id}`` / ``BATON_SESSION_ID`` is stable per task and role.
5. Report what the job used (:mod:`.usage`), then commit and push what the agent changed.
6. Upload the agent's output (always, as a log proof) and what it left in its proofs folder
   (type inferred: images → screenshot, JUnit XML → test_result, SARIF/bandit/bugs JSON → report,
   diffs → code_diff, logs), and submit reports as findings.
7. Post the handoff (the agent's ``handoff.json``, or one made from the exit status and log tail),
   and advance ``pass`` (exit 0 and no critical/high findings) or ``fail``, with the ``outputs.json``
   the agent left (:mod:`.outputs`; refused outputs are dropped, never the verdict). Anything that breaks
   after the claim (a clone that fails, a command that cannot start, an upload that raises) fails
   the stage with a note saying why; the job's working directory is deleted either way.

Credentials. The job comes from ``BATON_JOB`` and the API from ``BATON_API_URL``. The runner is
handed a single-use launch code (``bl_``): ``BATON_LAUNCH_CODE`` on ECS, else the first line of its
stdin (the local executor writes it there, so it is in no environment and no command line). It
exchanges the code for the job's token (``bt_``, bound to this task, stage and dispatch, dead when
the job ends) and keeps the token in memory only. Before anything else it makes itself
non-dumpable, so processes of the same user (the agent) cannot read its environ, memory or cwd
through ``/proc``. The agent's command gets an environment built from an allow-list
(:func:`work.agent_environment`), and git runs with a scrubbed one and without the working copy's
hooks (:func:`work.git`). What the command may reach is the task's state, through a proxy that lives
as long as the command (:mod:`.state_proxy`: ``BATON_STATE_URL``, ``BATON_STATE_TOKEN``).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess  # nosec B404  # runs git and agent commands by design
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Optional

from . import sessions
from .client import ApiError, BatonClient
from .outputs import OUTPUTS_FILE, input_descriptors, read_outputs, refuses_outputs
from .session_archive import declared_paths
from .state_proxy import StateProxy
from .usage import USAGE_FILE, report_usage
from .work import (ConfigDriftError, agent_environment, classify, describe_file, git_config_of, prepare_repository,
                   failure_report, prompt_text, publish_changes, remove_tree, render, task_branch, verify_role)

PR_SET_DUMPABLE = 4
EXIT_RUNNER_FAILED = 8   # the runner itself could not finish the job (the stage was failed, with why)


def log(message: str) -> None:
    print(f"[baton-runner] {message}", flush=True)


def forbid_inspection() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)``: processes of the same user can no longer read this process's
    ``/proc/<pid>/environ``, ``mem``, ``cwd`` or ptrace it (an exec resets it, so the agent and git
    stay ordinary processes). False where that is not available (not Linux); never raises."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def read_launch_code(environ: Mapping[str, str], stdin: Optional[IO[str]]) -> str:
    """The launch code: ``BATON_LAUNCH_CODE`` (ECS) or else the first line of stdin (local)."""
    code = environ.get("BATON_LAUNCH_CODE", "").strip()
    if code or stdin is None:
        return code
    try:
        if stdin.isatty():
            return ""
        return stdin.readline(4096).strip()
    except (OSError, ValueError):
        return ""


def fetch_job_token(api_url: str, job_id: str, launch_code: str) -> str:
    """Spend the single-use launch code for the job's token (``POST /jobs/{job_id}/token``)."""
    from urllib.parse import quote

    status, body = BatonClient(api_url, launch_code).request("POST", f"/jobs/{quote(job_id, safe='')}/token", {})
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token.startswith("bt_"):
        raise ApiError(status, "bad_token_response", "the token exchange did not answer with a job token")
    return token


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
        self.on_beat: Optional[Callable[[], None]] = None   # after each heartbeat (the session's saves)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.client.post(f"/tasks/{self.task_id}/heartbeat",
                                 {"claim_id": self.claim_id, "lease_seconds": self.lease_seconds})
            except ApiError as error:
                if error.status == 409 and error.code in ("lease_not_held", "lease_expired", "task_cancelled"):
                    self.lost = error.message
                    return
                if error.status == 401:   # a job token dies with its job (advanced, re-dispatched, killed)
                    self.lost = f"the job ended: {error.message}"
                    return
                log(f"heartbeat failed, will retry: {error}")
                continue
            callback = self.on_beat
            if callback is not None:
                try:
                    callback()
                except Exception as error:  # the heartbeat goes on whatever a callback does
                    log(f"warning: after the heartbeat: {type(error).__name__}: {error}")


def _exited(process: subprocess.Popen, wait_seconds: float) -> bool:
    """Whether the process has exited, waiting up to ``wait_seconds``. It is left unreaped, so its
    id (the agent's process group) cannot be reused while the group is signalled."""
    end = time.monotonic() + wait_seconds
    while True:
        if not hasattr(os, "waitid"):   # macOS before Python 3.13: reap (the group id may then be reused)
            if process.poll() is not None:
                return True
        else:
            try:
                if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return True
            except ChildProcessError:
                return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def run_command(command: str, cwd: Path, env: dict[str, str], output_path: Path, timeout: int,
                beat: Heartbeat) -> int:
    """Run the agent's command in a session of its own; stop it when it overruns or when the lease
    is lost (the task was cancelled, or re-dispatched to someone else). Whatever it leaves running
    in its process group is killed when it exits: the job is over."""
    deadline = time.monotonic() + timeout
    with open(output_path, "wb") as output:
        process = subprocess.Popen(command, shell=True, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,  # nosec B602  # the role's command template is the agent by design (admin-set, run in the agent's sandbox)
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            while not _exited(process, 0.5):
                if beat.lost or time.monotonic() > deadline:
                    reason = "lease lost" if beat.lost else "timed out"
                    output.write(f"\n[baton-runner] stopping the agent: {reason}\n".encode())
                    output.flush()
                    _signal_group(process.pid, signal.SIGTERM)
                    _exited(process, 10)
                    _signal_group(process.pid, signal.SIGKILL)
                    process.wait()
                    return 124
            _signal_group(process.pid, signal.SIGKILL)
            return process.wait()
        except BaseException:   # the runner is being stopped: the agent goes with it
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
            raise


STAGE_ROLE = {"dev": "dev", "qa": "qa", "sec": "security", "docs": "docs", "cicd": "cicd"}
CICD_ONLY_SOURCES = ("release", "rollback")   # tasks whose whole pipeline is the cicd stage
RUNNER_FILES = (USAGE_FILE, OUTPUTS_FILE)        # read by the runner from the proofs folder, never proofs


def next_role(context: dict[str, Any], passed: bool) -> str:
    stage = context["task"]["stage"]
    if not passed:
        return "dev"
    stages = ["cicd"] if context["task"].get("source") in CICD_ONLY_SOURCES else list(context["run"]["stages"])
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


class LeaseLostError(Exception):
    """The job's lease was lost while working: someone else has the task now; do not advance."""


def run_job(job: dict[str, Any], client: BatonClient, workdir: Optional[Path] = None) -> int:
    """Work one stage job start to finish; returns the runner's exit code (0: advanced)."""
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
    bind = getattr(client, "for_claim", None)
    client = bind(claim_id) if bind else client   # evidence is written under the claim
    log(f"claimed task {task_id} ({task['title']!r}) at stage {stage}, iteration {task['iteration']}")
    beat = Heartbeat(client, task_id, claim_id, max(1.0, heartbeat_seconds / 3), lease_seconds)
    beat.start()
    work: Optional[Path] = None
    stable: Optional[sessions.JobDirectory] = None
    try:
        code = EXIT_RUNNER_FAILED
        try:
            if workdir is not None:
                Path(workdir).mkdir(parents=True, exist_ok=True)
            if declared_paths(config.get("session_paths")):   # a path the agent's session can name again
                stable = sessions.stable_workdir(Path(workdir or tempfile.gettempdir()), task_id, role["role"])
                if stable is None:
                    log("warning: the task's session directory is in use or not ours; working in a new one "
                        "(an agent that finds its session by directory may start a new one)")
            work = stable.path if stable else Path(tempfile.mkdtemp(prefix=f"baton-{task_id}-", dir=workdir))
            passed, summary, outputs, failure = work_stage(job, client, context, config, task, work, beat)
            code = 0
        except LeaseLostError as lost:
            log(f"lost the lease while working ({lost}); not advancing")
            return 3
        except Exception as error:  # never a silent death: the stage fails, saying why
            if beat.lost:
                log(f"lost the lease while working ({beat.lost}); not advancing")
                return 3
            log(f"the job failed in the runner: {type(error).__name__}: {error}")
            passed, summary = False, f"the runner could not finish the job: {type(error).__name__}: {error}"
            outputs, failure = None, {"error": f"the runner could not finish the job: {type(error).__name__}"}
        advanced = advance(client, task_id, claim_id, passed, summary[:9000], outputs, failure)
        return advanced or code
    finally:
        beat.stopped.set()   # heartbeats run until the stage is handed back, uploads included
        if work is not None:
            remove_tree(work)   # the clone, prompt, proofs and scratch home go with the job
        if stable is not None:
            stable.release()


def work_stage(job: dict[str, Any], client: BatonClient, context: dict[str, Any], config: dict[str, Any],
               task: dict[str, Any], work: Path,
               beat: Heartbeat) -> tuple[bool, str, Optional[dict[str, Any]], Optional[dict[str, Any]]]:
    """Steps 3 to 7 up to the advance: (passed, notes, outputs for the advance, what a failure failed on).
    Raises when something breaks."""
    task_id, stage = task["id"], context["task"]["stage"]
    proofs_dir, repo, home, scratch_tmp = work / "proofs", work / "repo", work / "home", work / "tmp"
    for folder in (proofs_dir, home, scratch_tmp):
        folder.mkdir(parents=True, exist_ok=True)
    project = context["project"]
    primary = project.get("primary_branch", "main")
    branch = task_branch(task["run_id"], task_id)
    notes: list[str] = [prepare_repository(project["repository_url"], primary, branch, repo, home)]
    runner_git_config = git_config_of(repo)
    prompt_file = work / "prompt.md"
    prompt_file.write_text(prompt_text(config["prompt"], context, proofs_dir))
    role = context["role"]["role"]
    session_id = sessions.session_id(task_id, role)
    keeper = sessions.keeper_for(client, task_id, role, config, home, log)   # None: the role keeps no session
    restored = keeper.restore() if keeper else False
    command = render(sessions.command_template(config, job, restored), {
        "prompt_file": str(prompt_file), "repo_dir": str(repo), "proofs_dir": str(proofs_dir),
        "python": sys.executable, "task_id": task_id, "stage": stage, "session_id": session_id})
    env = agent_environment({
        "BATON_TASK_ID": task_id, "BATON_RUN_ID": task["run_id"], "BATON_PROJECT_ID": task["project_id"],
        "BATON_STAGE": stage, "BATON_ITERATION": str(task["iteration"]), "BATON_ATTEMPT": str(job.get("attempt", 1)),
        "BATON_TASK_TITLE": task["title"], "BATON_TASK_DESCRIPTION": task.get("description") or "",
        "BATON_WORKDIR": str(work), "BATON_REPO_DIR": str(repo), "BATON_PROOFS_DIR": str(proofs_dir),
        "BATON_PROMPT_FILE": str(prompt_file), "BATON_PRIMARY_BRANCH": primary, "BATON_SESSION_ID": session_id,
        **input_descriptors(context["task"], work)}, home, scratch_tmp)
    output_path = work / "agent-output.log"
    started = time.monotonic()
    beat.on_beat = keeper.tick if keeper else None   # saves while the command runs, every few minutes at most
    try:
        with StateProxy(client, task_id) as state:   # the task's state, lent to the command for this job only
            exit_code = run_command(command, repo, {**env, **state.environment()}, output_path,
                                    int(config.get("timeout_seconds") or 3600), beat)
    finally:
        beat.on_beat = None
        if keeper is not None and not beat.lost:   # whatever the exit (a timeout, the runner stopped); not
            keeper.close()                         # once the lease is gone: the state is someone else's now
    wall_seconds = time.monotonic() - started
    if beat.lost:
        raise LeaseLostError(beat.lost)
    if keeper is not None:
        notes.extend(keeper.notes)
    report_usage(client, task_id, proofs_dir, output_path, wall_seconds, log)   # before the advance ends the token
    outputs, problem = read_outputs(proofs_dir)
    if problem:
        log(f"warning: {problem}; advancing without outputs")
        notes.append(problem)
    if os.path.lexists(repo / ".git"):
        notes.append(publish_changes(repo, branch, f"baton: {stage} of {task['title']} (iteration {task['iteration']})",
                                     home, runner_git_config))
    else:
        notes.append("no repository to publish (the agent removed .git)")
    passed = exit_code == 0
    proof_ids, verdicts = [], []
    runner_files = {proofs_dir / name for name in RUNNER_FILES}
    files = [(output_path, ("log", None))] + [(p, classify(p)) for p in sorted(proofs_dir.rglob("*"))
                                             if p.is_file() and not p.is_symlink() and p not in runner_files]
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
    written, problem = read_handoff(proofs_dir / "handoff.json")
    if problem:
        passed = False
        notes.append(f"{problem}: the stage fails (a generated handoff was sent instead)")
    tail = output_path.read_text(errors="replace")[-1500:] if output_path.exists() else ""
    handoff = build_handoff(written, context, passed, exit_code, tail, proof_ids)
    try:
        client.post(f"/tasks/{task_id}/handoffs", handoff)
    except ApiError as error:
        log(f"handoff not recorded: {error}")
    summary = f"command exited {exit_code} after {time.monotonic() - started:.1f}s; " + "; ".join(notes)
    failure = None if passed else failure_report(proofs_dir, output_path)   # for the director, never a verdict
    return passed, summary, outputs, failure


def read_handoff(path: Path) -> tuple[dict[str, Any], Optional[str]]:
    """The agent's ``handoff.json``: (its fields, None), or ({}, why it is unusable). No file is
    fine (a handoff is generated); a file that is not a JSON object is the agent's failure."""
    if not os.path.lexists(path):
        return {}, None
    if path.is_symlink() or not path.is_file():
        return {}, "handoff.json is not a regular file"
    try:
        loaded = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return {}, "handoff.json is not valid JSON"
    if not isinstance(loaded, dict):
        return {}, f"handoff.json holds a JSON {type(loaded).__name__}, not an object"
    return loaded, None


def build_handoff(written: dict[str, Any], context: dict[str, Any], passed: bool, exit_code: int, tail: str,
                  proof_ids: list[str]) -> dict[str, Any]:
    """The agent's own handoff fields when it wrote them, the rest made from the exit and the log tail."""
    from_role = STAGE_ROLE[context["task"]["stage"]]
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


def advance(client: BatonClient, task_id: str, claim_id: str, passed: bool, notes: str,
            outputs: Optional[dict[str, Any]] = None, failure: Optional[dict[str, Any]] = None) -> int:
    result = "pass" if passed else "fail"
    try:
        client.post(f"/tasks/{task_id}/advance", {"claim_id": claim_id, "result": result, "notes": notes,
                                                  **({"outputs": outputs} if outputs else {}),
                                                  **({"failure": failure} if failure and not passed else {})})
    except ApiError as error:
        if outputs and refuses_outputs(error):   # the outputs are lost, the verdict is not
            log(f"the outputs were refused ({error.code}: {error.message}); advancing {result} without them")
            return advance(client, task_id, claim_id, passed, f"{notes}\noutputs not kept: {error.message}"[:10_000],
                           failure=failure)
        if error.status == 422 and passed:
            log(f"cannot pass: {error.message}; failing the stage instead")
            return advance(client, task_id, claim_id, False, f"{notes}\n{error.message}", outputs)
        log(f"advance refused: {error}")
        return 4
    log(f"advanced task {task_id}: {result}" + (f" with outputs {', '.join(sorted(outputs))[:300]}" if outputs else ""))
    return 0


def _stop(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)   # unwinds: the agent is stopped and the work dir deleted


def main() -> int:
    forbid_inspection()   # first: nothing of ours is readable through /proc from here on
    signal.signal(signal.SIGTERM, _stop)
    try:
        job = json.loads(os.environ["BATON_JOB"])
        api_url = os.environ["BATON_API_URL"]
        if not isinstance(job, dict) or not all(isinstance(job.get(k), str) for k in ("job_id", "task_id", "stage")):
            raise ValueError("BATON_JOB must be a JSON object with job_id, task_id and stage")
    except (KeyError, ValueError) as error:
        log(f"missing or invalid job environment: {error}")
        return 2
    launch_code = read_launch_code(os.environ, sys.stdin)
    os.environ.pop("BATON_LAUNCH_CODE", None)   # spent below either way; nobody after us needs it
    if not launch_code:
        log("no launch code: expected BATON_LAUNCH_CODE or a first line on stdin")
        return 2
    try:
        client = BatonClient(api_url, fetch_job_token(api_url, job["job_id"], launch_code))
    except ApiError as error:
        log(f"could not exchange the launch code for the job's token: {error}")
        return 6
    del launch_code
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
