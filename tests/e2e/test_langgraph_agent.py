"""A LangGraph agent run by Baton resumes where it stopped (issue 13, item 5), on the local stack:
the dev role's command is tests/agents/langgraph_agent.py, whose graph keeps its checkpoints in the
task's state through the runner's state proxy — the command holds no Baton credential. Its first job
plans and stops before building; QA fails the task once (``flaky-qa``); the loop-back's dev job,
a new process under a new job token, finds the graph waiting at ``build`` and builds without planning
again. The checkpoints are in the task's state under ``langgraph/{session id}/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from chalicelib.agent import sessions
from chalicelib.agent.client import BatonClient
from tests.support.agents import bare_repository, scripted_role
from tests.support.waiting import wait_for

AGENT = Path(__file__).resolve().parents[1] / "agents" / "langgraph_agent.py"
PROJECT = "e2e-langgraph"


def test_a_langgraph_agent_resumes_its_graph_in_the_next_job(stack, tmp_path):
    admin = BatonClient(stack.api_url, stack.admin_key)
    admin.put("/roles/qa", scripted_role("qa"))
    admin.put("/roles/dev", {**scripted_role("dev"), "command": f"{sys.executable} {AGENT}"})
    repository = bare_repository(tmp_path, PROJECT)
    admin.post("/projects", {"id": PROJECT, "name": "LangGraph", "repository_url": f"file://{repository}"})
    run = admin.post(f"/projects/{PROJECT}/runs", {"title": "langgraph", "deploy_gate": False, "stages": ["dev", "qa"],
                                                   "tasks": [{"title": "graph flaky-qa"}]})
    wait_for(lambda: admin.get(f"/runs/{run['id']}")["status"] in ("succeeded", "failed"), "the run to end", 180)
    assert admin.get(f"/runs/{run['id']}")["status"] == "succeeded"

    (task,) = [t for t in admin.get(f"/runs/{run['id']}/tasks?limit=50")["items"] if t["source"] != "release"]
    assert task["iteration"] == 2
    dev = sorted((h for h in admin.get(f"/tasks/{task['id']}/handoffs?limit=50")["items"] if h["from_role"] == "dev"),
                 key=lambda h: h["created_at"])
    assert [(h["summary"], h["notes_for_next"]) for h in dev] == [
        ("started; stopped before build", "planned in iteration 1"),
        ("resumed at build", "planned in iteration 1; built in iteration 2")]   # planned once, in the first job

    thread = sessions.session_id(task["id"], "dev")
    names = [s["name"] for s in admin.get(f"/tasks/{task['id']}/state?prefix=langgraph%2F&limit=50")["items"]]
    assert names and all(n.startswith(f"langgraph/{thread}/") for n in names)
