"""The LangGraph checkpointer (chalicelib/agent/langgraph_saver.py) against Baton's real API in
process: LangGraph's own conformance suite (``langgraph-checkpoint-conformance``), each capability
suite on a fresh task under a real job token; large payloads through the presigned S3 upload; two
processes on one thread; graphs that crash or interrupt between their two nodes and resume, under
the next job's token, at the second; and Baton's functions importing no LangGraph.

The saver's client is :class:`InProcessClient`: BatonClient's ``request`` sent through
``chalice.test.Client`` (same paths, headers and errors, no socket); S3's side of the presigned
forms is :class:`MotoTransfer` (the form's policy checked, the bytes put into moto's bucket)."""

from __future__ import annotations

import asyncio
import base64
import json
import operator
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, Optional, TypedDict
from urllib.parse import unquote, urlparse

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from chalicelib.agent.client import ApiError, BatonClient
from chalicelib.agent.langgraph_saver import TaskStateSaver
from tests.support.api import start_run
from tests.support.jobs import job_token_for

ROOT = Path(__file__).resolve().parents[2]


class InProcessClient(BatonClient):
    """A BatonClient whose requests go through ``chalice.test.Client`` instead of a socket."""

    def __init__(self, http: Any, api_key: Optional[str], claim_id: Optional[str] = None):
        super().__init__("http://in-process", api_key, claim_id=claim_id)
        self.http = http
        self.calls = 0

    def request(self, method: str, path: str, body: Any = None,
                headers: Optional[dict[str, str]] = None) -> tuple[int, Any]:
        self.calls += 1
        all_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            all_headers["Authorization"] = f"Bearer {self.api_key}"
        if self.claim_id:
            all_headers["Baton-Claim"] = self.claim_id
        all_headers.update(headers or {})
        response = getattr(self.http, method.lower())(path, headers=all_headers,
                                                      body=json.dumps(body) if body is not None else None)
        data = json.loads(response.body) if response.body else None
        if response.status_code >= 400:
            error = (data or {}).get("error") or {}
            raise ApiError(response.status_code, error.get("code", "http_error"), error.get("message", ""),
                           error.get("details"))
        return response.status_code, data


class MotoTransfer:
    """S3's side of a presigned form and URL, on moto's in-process bucket: the form's policy (exact
    content type, length range) is checked as S3 would before the object is stored."""

    def __init__(self, services: Any):
        self.s3 = services.proofs.objects.client
        self.bucket = services.settings.bucket
        self.uploads = 0

    def upload_presigned_post(self, url: str, fields: dict[str, Any], filename: str, content_type: str,
                              data: bytes) -> None:
        policy = json.loads(base64.b64decode(fields["policy"]))
        for condition in policy["conditions"]:
            if isinstance(condition, list) and condition[0] == "content-length-range":
                assert condition[1] <= len(data) <= condition[2], "S3 would refuse the length"
            elif isinstance(condition, dict) and "Content-Type" in condition:
                assert condition["Content-Type"] == content_type == fields["Content-Type"]
        self.uploads += 1
        self.s3.put_object(Bucket=self.bucket, Key=fields["key"], Body=data, ContentType=content_type)

    def download(self, url: str) -> bytes:
        parsed = urlparse(url)
        key = unquote(parsed.path).lstrip("/")
        if not parsed.netloc.startswith(self.bucket + "."):
            key = key.removeprefix(self.bucket + "/")
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()


@pytest.fixture
def task_ids(api, project) -> list[str]:
    run = start_run(api, tasks=12, stages=["dev", "qa"], deploy_gate=False)
    return [t["id"] for t in api.get(f"/runs/{run['id']}/tasks?limit=50").data["items"]]


def job_saver(api, services, task_id: str, **options: Any) -> TaskStateSaver:
    """A saver as a job builds it: the job's token, the task's id."""
    client = InProcessClient(api.client.http, job_token_for(services, task_id))
    return TaskStateSaver(client, task_id, transfer=MotoTransfer(services), **options)


def state_names(api, task_id: str, prefix: str = "langgraph/") -> list[str]:
    listed = api.get(f"/tasks/{task_id}/state?prefix={prefix}&limit=200").data
    return [i["name"] for i in listed["items"]]


# ---- LangGraph's conformance suite


def test_langgraph_conformance_suite_passes_every_capability(api, services, task_ids, capsys):
    fresh = iter(task_ids)
    savers: list[TaskStateSaver] = []

    @checkpointer_test(name="TaskStateSaver (Baton task state, in-process API)")
    async def baton_task_state():
        saver = job_saver(api, services, next(fresh))     # a fresh task (and job) per capability suite
        savers.append(saver)
        yield saver

    report = asyncio.run(validate(baton_task_state, progress=ProgressCallbacks.verbose()))
    with capsys.disabled():
        report.print_report()
        for name, result in report.results.items():
            print(f"  conformance {name}: detected={result.detected} passed={result.passed} "
                  f"tests_passed={result.tests_passed} tests_failed={result.tests_failed}")
        print(f"  conformance: {sum(s.client.calls for s in savers)} API calls over {len(savers)} tasks")
    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert report.passed_all_base(), failures
    assert {name for name, r in report.results.items() if r.detected} == {
        "put", "put_writes", "get_tuple", "list", "delete_thread", "delete_for_runs", "copy_thread", "prune"}
    assert report.passed_all() and report.conformance_level() == "FULL", failures


# ---- how it keeps the task's caps and large values


def checkpoint(i: int, values: dict[str, Any]) -> dict[str, Any]:
    from langgraph.checkpoint.base import empty_checkpoint

    made = empty_checkpoint()
    made.update({"v": 1, "channel_values": values, "channel_versions": {k: i + 1 for k in values}})
    return made


def config_of(thread_id: str, checkpoint_id: Optional[str] = None) -> dict[str, Any]:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    return {"configurable": {**configurable, **({"checkpoint_id": checkpoint_id} if checkpoint_id else {})}}


def test_small_checkpoints_share_pages_and_each_call_is_one_version(api, services, task_ids):
    task_id = task_ids[0]
    saver = job_saver(api, services, task_id, page_bytes=16 * 1024)
    parent = config_of("t-1")
    for i in range(60):
        parent = saver.put(parent, checkpoint(i, {"count": i, "note": "x" * 200}), {"source": "loop", "step": i}, {})
        saver.put_writes(parent, [("count", i + 1), ("note", "y")], task_id=f"task-{i}")
    names = state_names(api, task_id)
    assert all(n.startswith("langgraph/t-1/log/") for n in names) and 2 <= len(names) <= 6, names
    versions = sum(api.get(f"/tasks/{task_id}/state/{n.replace('/', '%2F')}").data["version"] for n in names)
    assert versions == 120                                 # one version per put and per put_writes
    latest = TaskStateSaver(saver.client, task_id).get_tuple(config_of("t-1"))   # another process reads it all
    assert latest.checkpoint["channel_values"]["count"] == 59 and latest.metadata["step"] == 59
    assert sorted(w[1] for w in latest.pending_writes) == ["count", "note"]
    assert len(list(saver.list(config_of("t-1")))) == 60


def test_large_payloads_go_to_a_blob_inline_or_through_s3_and_come_back_checked(api, services, task_ids):
    task_id = task_ids[1]
    saver = job_saver(api, services, task_id)
    medium = {"log": "m" * 100_000}
    big = {"log": bytes(range(256)) * 2_000 + b"tail"}          # 512 KB of bytes: no JSON would carry it
    first = saver.put(config_of("big"), checkpoint(0, medium), {"source": "input", "step": -1}, {})
    second = saver.put(first, checkpoint(1, big), {"source": "loop", "step": 0}, {})
    saver.put_writes(second, [("log", "w" * 300_000)], task_id="writer")
    blobs = [n for n in state_names(api, task_id) if "/blob/" in n]
    assert len(blobs) == 3, blobs
    stored = {n: api.get(f"/tasks/{task_id}/state/{n.replace('/', '%2F')}").data for n in blobs}
    assert sorted(v["stored"] for v in stored.values()) == ["inline", "s3", "s3"]
    assert saver.transfer.uploads == 2
    fresh = TaskStateSaver(saver.client, task_id, transfer=saver.transfer)
    assert fresh.get_tuple(first).checkpoint["channel_values"] == medium
    again = fresh.get_tuple(config_of("big"))
    assert again.checkpoint["channel_values"] == big and again.pending_writes == [("writer", "log", "w" * 300_000)]
    fresh.delete_thread("big")
    assert state_names(api, task_id) == [] and fresh.get_tuple(config_of("big")) is None


def test_odd_thread_ids_get_a_hashed_folder_and_a_deleted_page_name_comes_back(api, services, task_ids):
    task_id = task_ids[2]
    saver = job_saver(api, services, task_id)
    odd = "customer 42 / ticket #7: " + "é" * 300
    stored = saver.put(config_of(odd), checkpoint(0, {"a": 1}), {"source": "input", "step": -1}, {})
    (name,) = state_names(api, task_id)
    assert name.startswith("langgraph/_h") and name.endswith("/log/00001") and len(name) < 80
    assert saver.get_tuple(config_of(odd)).config["configurable"]["thread_id"] == odd
    saver.prune([odd], strategy="delete")
    saver.put(config_of(odd), checkpoint(1, {"a": 2}), {"source": "input", "step": -1}, {})
    assert state_names(api, task_id) == [name]             # the same name again: no new name spent
    assert saver.get_tuple(stored) is None


def test_two_processes_on_one_thread_keep_each_others_entries(api, services, task_ids):
    task_id = task_ids[3]
    token = job_token_for(services, task_id)
    one, two = (TaskStateSaver(InProcessClient(api.client.http, token), task_id) for _ in range(2))
    base = one.put(config_of("shared"), checkpoint(0, {"n": 0}), {"source": "input", "step": -1}, {})
    assert two.get_tuple(base) is not None                 # both know the page now
    one.put_writes(base, [("n", 1)], task_id="from-one")
    two.put_writes(base, [("n", 2)], task_id="from-two")   # its page is stale: conflict, read again, retry
    writes = one.get_tuple(base).pending_writes
    assert sorted(w[0] for w in writes) == ["from-one", "from-two"]


def test_a_job_token_that_ended_cannot_read_or_write_and_an_agent_key_needs_its_claim(api, services, task_ids):
    task_id = task_ids[4]
    old = job_saver(api, services, task_id)
    old.put(config_of("t"), checkpoint(0, {"a": 1}), {"source": "input", "step": -1}, {})
    job_saver(api, services, task_id)                      # the task's next job: the old token is dead
    with pytest.raises(ApiError) as ended:
        old.get_tuple(config_of("t"))
    assert ended.value.status == 401
    key = api.post("/keys", {"name": "graph-agent", "principal": "agent", "project_ids": ["demo"]}).data["key"]
    other = task_ids[5]
    claim = api.as_key(key).post("/queue/claim", {"stage": "dev", "agent_id": "g", "task_id": other}).data["claim"]
    unbound = TaskStateSaver(InProcessClient(api.client.http, key), other)
    with pytest.raises(ApiError) as refused:
        unbound.put(config_of("t"), checkpoint(0, {"a": 1}), {"source": "input", "step": -1}, {})
    assert refused.value.status == 409 and refused.value.code == "claim_not_held"
    bound = TaskStateSaver(InProcessClient(api.client.http, key).for_claim(claim["claim_id"]), other)
    bound.put(config_of("t"), checkpoint(0, {"a": 1}), {"source": "input", "step": -1}, {})
    assert bound.get_tuple(config_of("t")).checkpoint["channel_values"] == {"a": 1}


def test_from_environment_names_what_is_missing():
    with pytest.raises(ValueError, match="BATON_API_KEY, BATON_TASK_ID"):
        TaskStateSaver.from_environment({"BATON_API_URL": "http://127.0.0.1:8000"})
    saver = TaskStateSaver.from_environment({"BATON_API_URL": "http://127.0.0.1:8000", "BATON_API_KEY": "bt_x",
                                             "BATON_TASK_ID": "tsk_1", "BATON_CLAIM": "clm_1"})
    assert (saver.task_id, saver.client.claim_id) == ("tsk_1", "clm_1") and "bt_x" not in repr(saver)


# ---- a LangGraph agent resumes where it stopped


class Steps(TypedDict):
    steps: Annotated[list[str], operator.add]


def test_a_graph_that_crashed_between_its_nodes_resumes_at_the_second_under_the_next_job(api, services, task_ids):
    task_id = task_ids[6]
    ran = {"plan": 0, "build": 0}
    crash = {"now": True}

    def plan(state: Steps) -> dict[str, Any]:
        ran["plan"] += 1
        return {"steps": ["planned"]}

    def build(state: Steps) -> dict[str, Any]:
        ran["build"] += 1
        if crash["now"]:
            raise RuntimeError("the container was killed")
        return {"steps": ["built"]}

    builder = StateGraph(Steps)
    builder.add_node("plan", plan)
    builder.add_node("build", build)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "build")
    builder.add_edge("build", END)
    config = {"configurable": {"thread_id": task_id}}

    first_job = builder.compile(checkpointer=job_saver(api, services, task_id))
    with pytest.raises(RuntimeError, match="killed"):
        first_job.invoke({"steps": []}, config)
    assert ran == {"plan": 1, "build": 1}

    crash["now"] = False                                   # re-dispatched: a new job, token and process
    second_job = builder.compile(checkpointer=job_saver(api, services, task_id))
    assert second_job.get_state(config).next == ("build",)
    result = asyncio.run(second_job.ainvoke(None, config))
    assert result == {"steps": ["planned", "built"]}
    assert ran == {"plan": 1, "build": 2}                  # plan was not run again
    assert second_job.get_state(config).next == ()
    assert [n for n in state_names(api, task_id)] == [f"langgraph/{task_id}/log/00001"]


def test_a_graph_interrupted_for_a_person_resumes_with_the_answer_under_the_next_job(api, services, task_ids):
    task_id = task_ids[7]
    ran = {"plan": 0}

    def plan(state: Steps) -> dict[str, Any]:
        ran["plan"] += 1
        return {"steps": ["planned"]}

    def review(state: Steps) -> dict[str, Any]:
        return {"steps": [f"review: {interrupt({'question': 'ship it?'})}"]}

    builder = StateGraph(Steps)
    builder.add_node("plan", plan)
    builder.add_node("review", review)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "review")
    builder.add_edge("review", END)
    config = {"configurable": {"thread_id": "review-thread"}}

    paused = builder.compile(checkpointer=job_saver(api, services, task_id)).invoke({"steps": []}, config)
    assert paused["__interrupt__"][0].value == {"question": "ship it?"}
    resumed_graph = builder.compile(checkpointer=job_saver(api, services, task_id))
    assert resumed_graph.get_state(config).next == ("review",)
    assert resumed_graph.invoke(Command(resume="yes"), config) == {"steps": ["planned", "review: yes"]}
    assert ran["plan"] == 1


# ---- optional at run time


def test_batons_functions_import_no_langgraph():
    script = ("import sys, app; from chalicelib.agent import runner, client, transfer; "
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('langgraph', 'langchain_core')))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
    requirements = (ROOT / "requirements.txt").read_text()
    assert "langgraph" not in requirements and "langchain" not in requirements
