"""A LangGraph agent run by Baton's runner (tests/e2e/test_langgraph_agent.py): a two-node graph
(``plan`` → ``build``) whose checkpoints live in the task's state, reached through the runner's state
proxy (``TaskStateSaver.from_environment()``: ``BATON_STATE_URL``, ``BATON_STATE_TOKEN``; the command
has no Baton credential). The thread is the job's ``BATON_SESSION_ID`` (stable per task and role).

The first job stops after ``plan`` (as an agent whose container ends mid-graph would); a later job of
the same task finds the graph waiting at ``build`` and resumes there, without planning again. Each
job says what it found and did in its handoff.
"""

import json
import operator
import os
import sys
from pathlib import Path
from typing import Annotated, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # Baton's checkout: the saver's module

from langgraph.graph import END, START, StateGraph  # noqa: E402

from chalicelib.agent.langgraph_saver import TaskStateSaver  # noqa: E402


class Steps(TypedDict):
    steps: Annotated[list[str], operator.add]


def plan(state: Steps) -> dict:
    return {"steps": [f"planned in iteration {os.environ['BATON_ITERATION']}"]}


def build(state: Steps) -> dict:
    return {"steps": [f"built in iteration {os.environ['BATON_ITERATION']}"]}


builder = StateGraph(Steps)
builder.add_node("plan", plan)
builder.add_node("build", build)
builder.add_edge(START, "plan")
builder.add_edge("plan", "build")
builder.add_edge("build", END)
graph = builder.compile(checkpointer=TaskStateSaver.from_environment(), interrupt_after=["plan"])
config = {"configurable": {"thread_id": os.environ["BATON_SESSION_ID"]}}

waiting_at = graph.get_state(config).next
if not waiting_at:
    result = graph.invoke({"steps": []}, config)       # a fresh thread: plan, then stop before build
    summary = f"started; stopped before {', '.join(graph.get_state(config).next)}"
else:
    result = graph.invoke(None, config)                # resume where the last job stopped
    summary = f"resumed at {', '.join(waiting_at)}"
with open(os.path.join(os.environ["BATON_PROOFS_DIR"], "handoff.json"), "w") as handoff:
    json.dump({"summary": summary, "notes_for_next": "; ".join(result["steps"]), "confidence": "high"}, handoff)
print(f"langgraph agent: {summary}: {result['steps']}")
