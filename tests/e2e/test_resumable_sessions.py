"""Resumable agents on the local stack: a dev role with ``session_paths`` and a ``resume_command``
(the scripted agent of tests/agents/resumable.py appends a line to a file in its session folder each
job), a task whose QA fails once (``flaky-qa``): the loop-back's dev job starts from the first dev
job's session, runs the resume command with the same ``{session_id}`` in the same directory, and
says so in its handoff and its proof; the task's state holds the session's two versions. And a
runner stopped mid-job (SIGTERM, as ECS stops a container: ``stop-once``) saves the session on its
way out; the job re-dispatched once the lease lapses starts from it.

Both runs are background runs (tests/e2e/background.py): they start with the tier's stack, so the
stopped runner's lease lapses (30 s) while the rest of the tier runs, and these tests run last.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import urllib.request
from typing import Any

import pytest

from chalicelib.agent import sessions
from chalicelib.agent.client import BatonClient
from tests.e2e.background import SESSION
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def admin(stack) -> BatonClient:
    return BatonClient(stack.api_url, stack.admin_key)


@pytest.fixture(scope="module")
def runs(background_runs) -> dict[str, dict[str, Any]]:
    return {"loop-back": background_runs["sessions-loop-back"], "stopped": background_runs["sessions-stopped"]}


def ended(client: BatonClient, run_id: str, deadline_seconds: float = 180) -> dict[str, Any]:
    wait_for(lambda: client.get(f"/runs/{run_id}")["status"] in ("succeeded", "failed"), "the run to end",
             deadline_seconds)
    return client.get(f"/runs/{run_id}")


def saved_log(client: BatonClient, task_id: str) -> tuple[dict[str, Any], list[str]]:
    """The task's saved dev session (its state's metadata) and the lines of its log.txt."""
    saved = client.get(f"/tasks/{task_id}/state/sessions%2Fdev")
    with urllib.request.urlopen(saved["download_url"], timeout=30) as response:  # nosec B310  # the local stack
        archive = response.read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))) as tar:
        return saved, tar.extractfile(f"{SESSION}/log.txt").read().decode().splitlines()


def handoffs_of(client: BatonClient, task_id: str) -> list[dict[str, Any]]:
    items = client.get(f"/tasks/{task_id}/handoffs?limit=50")["items"]
    return sorted(items, key=lambda h: h["created_at"])


def test_the_loop_back_resumes_the_first_jobs_session(admin, runs, background_runs):
    run = runs["loop-back"]
    assert ended(admin, run["id"])["status"] == "succeeded"
    (task,) = [t for t in admin.get(f"/runs/{run['id']}/tasks?limit=50")["items"] if t["source"] != "release"]
    assert task["iteration"] == 2 and task["stage"] == "complete"

    dev = [h for h in handoffs_of(admin, task["id"]) if h["from_role"] == "dev"]
    assert [h["summary"] for h in dev] == ["fresh: the session held 0 line(s)", "resume: the session held 1 line(s)"]
    first_line = dev[1]["notes_for_next"]   # what the second job found: the first job's line
    assert first_line.startswith("dev iteration=1 attempt=1 mode=fresh session=")

    # the task's state: the session after each dev job, as an archive uploaded to the proof bucket
    saved, log = saved_log(admin, task["id"])
    assert saved["version"] == 2 and saved["content_type"] == "application/octet-stream" and saved["value"] is None
    assert len(log) == 2 and log[0] == first_line.strip()
    assert log[1].startswith("dev iteration=2 attempt=1 mode=resume session=")
    # one session id for the task and role, in the command and the environment, and one directory
    session_id = sessions.session_id(task["id"], "dev")
    fields = [dict(part.split("=", 1) for part in line.split()[1:]) for line in log]
    assert {f["session"] for f in fields} == {f["env"] for f in fields} == {session_id}
    assert fields[0]["cwd"] == fields[1]["cwd"] and fields[0]["cwd"].endswith(f"baton-session-{task['id']}-dev/repo")

    # the second dev job's proof says what it found
    proofs = admin.get(f"/tasks/{task['id']}/proofs?limit=50")["items"]
    seen = [p for p in proofs if p["filename"] == "session-seen.txt"]
    assert len(seen) == 2
    texts = sorted(admin.get(f"/proofs/{p['id']}/text")["text"] for p in seen)
    assert texts == sorted(["(the session was empty)\n", first_line])


def test_a_runner_stopped_mid_job_saves_the_session_and_the_redispatched_job_resumes_it(admin, runs,
                                                                                          background_runs):
    run = runs["stopped"]
    assert ended(admin, run["id"])["status"] == "succeeded"
    (task,) = [t for t in admin.get(f"/runs/{run['id']}/tasks?limit=50")["items"] if t["source"] != "release"]
    actions = [e["action"] for e in admin.get(f"/runs/{run['id']}/events?limit=200")["items"]]
    assert actions.count("job.redispatched") == 1
    dev = [h for h in handoffs_of(admin, task["id"]) if h["from_role"] == "dev"]
    assert [h["summary"] for h in dev] == ["resume: the session held 1 line(s)"]   # the stopped job handed nothing
    assert dev[0]["notes_for_next"].startswith("dev iteration=1 attempt=1 mode=fresh session=")
    saved, log = saved_log(admin, task["id"])
    assert saved["version"] == 2
    assert [line.split()[:4] for line in log] == [["dev", "iteration=1", "attempt=1", "mode=fresh"],
                                                  ["dev", "iteration=1", "attempt=2", "mode=resume"]]
