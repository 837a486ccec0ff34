"""Run effects: what a task's change does to its run and to its Step Functions executions.

Used by every use case that moves a task (claim, advance, set-stage, cancel, dispatch, expiry),
so the consequences are decided in one place:

* the stage job's task token is answered (next stage to dispatch, or done/failed/cancelled);
* a started task that ends frees a slot of the run's parallelism (and asks to fill it);
* the run's status follows its counters (awaiting approval, succeeded, failed), the deploy
  approval is opened, and the run execution's waiting token is answered;
* the canary's counters follow its tasks, and when the last one ended the canary gate opens.

All of it lands in the same transaction as the task change (outbox records included).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from ..adapters.dynamodb import RunEffect
from ..domain import canary, clock
from ..domain.entities import Task
from ..domain.enums import ApprovalStatus, CanaryState, RunStatus, TaskStatus
from ..domain.messages import AnswerToken, Enqueue, FillMessage
from ..domain.pipeline import Transition
from ..domain.progress import RUN_OUTCOME, apply_deltas, counter_deltas, status_when_all_finished

ACTIVE_COUNTER = "n_active"
# What the run execution waiting on a gate is told (the run state machine's Choice states).
GATE_ANSWERS = {"deploy": ("release", "rejected"), "canary": ("continue", "rejected")}


def gate_answer(gate: str, approved: bool) -> str:
    yes, no = GATE_ANSWERS.get(gate, ("continue", "rejected"))
    return yes if approved else no


def wait_outcome(run_item: dict[str, Any]) -> Optional[str]:
    """What the run execution waiting for its tasks is told now, or None while it keeps waiting
    (the run works, or waits at its budget gate: the tasks are not over)."""
    status = RunStatus(run_item["status"])
    if status in (RunStatus.running, RunStatus.pending):
        return None
    if status == RunStatus.awaiting_approval:
        gate = run_item.get("gate", "deploy")
        return None if gate == "budget" else ("canary" if gate == "canary" else RUN_OUTCOME[status])
    return RUN_OUTCOME.get(status, "failed")

def answer_stage_job(before: Task, after: Task, *, attempt: int = 1) -> tuple[Task, list[AnswerToken]]:
    """Answer the execution waiting on ``before``'s stage job, if any, and clear the token.

    The answer is the execution's next input: ``{next: dispatch, task_id, dispatch, attempt}`` for
    another stage job (the next stage, a loop-back, or ``attempt`` > 1 for a re-dispatch of the same
    stage), else ``{next: done|failed|cancelled}``.
    """
    token = before.sfn_token
    if not token or after.status == TaskStatus.in_progress:
        return after, []
    if after.status == TaskStatus.queued:
        output: dict[str, Any] = {"next": "dispatch", "task_id": before.id, "dispatch": before.dispatch_seq + 1,
                                  "attempt": attempt}
        after = after.model_copy(update={"enqueued_at": None})   # claimable again once dispatched
    else:
        output = {"next": {TaskStatus.done: "done", TaskStatus.failed: "failed",
                           TaskStatus.cancelled: "cancelled"}[after.status]}
    return after.model_copy(update={"sfn_token": None}), [AnswerToken(token=token, output=output)]  # nosec B105  # clears the token; no secret in code


def fill_request(run_id: str) -> Enqueue:
    return Enqueue(body=FillMessage(run_id=run_id))


def run_effect(before: Task, after: Task, transition: Transition, *, sfn: bool,
               open_gate: Callable[[dict[str, Any]], list[dict[str, Any]]],
               reopen: bool = False) -> Callable[[dict[str, Any]], RunEffect]:
    """Build the ``on_run`` callback: the run-level consequences, computed from the run as read."""
    deltas = counter_deltas(transition)
    ended = after.is_terminal and not before.is_terminal
    canary_deltas = canary.task_deltas(canary=before.canary, ended_as=after.status.value if ended else None,
                                       looped_back=transition.action == "task.looped_back",
                                       first_iteration=before.iteration == 1)

    def on_run(run_item: dict[str, Any]) -> RunEffect:
        effect = RunEffect(counters=dict(canary_deltas))
        if sfn and ended and before.started:
            effect.counters[ACTIVE_COUNTER] = -1
            effect.outbox.append(fill_request(before.run_id))
        status = RunStatus(run_item["status"])
        if reopen and status == RunStatus.awaiting_approval and not after.is_terminal \
                and run_item.get("gate", "deploy") == "deploy":
            # A human sent a finished task back: the run works again; its gate stays pending
            # and is asked again when every task has ended.
            effect.set["status"] = RunStatus.running.value
            effect.event_data["run_status"] = RunStatus.running.value
            return effect
        if status == RunStatus.running:
            counted = apply_deltas(run_item, {**deltas, **effect.counters})
            if canary_ended(run_item, counted):
                open_canary_gate(run_item, counted, effect, open_gate)
                return effect
            settle(run_item, counted, effect, open_gate)
        return effect

    return on_run


def canary_ended(run_item: dict[str, Any], counted: dict[str, Any]) -> bool:
    """The canary's last task just ended while the rest of the run is held back for its gate."""
    return (run_item.get("canary_state") == CanaryState.running.value and int(counted.get(canary.OPEN, 0) or 0) <= 0
            and int(counted.get(canary.HELD, 0) or 0) > 0)


def open_canary_gate(run_item: dict[str, Any], counted: dict[str, Any], effect: RunEffect,
                     open_gate: Callable[..., list[dict[str, Any]]]) -> None:
    """Ask a person whether the rest may start, with how the canary did; the run execution moves
    on to its canary gate."""
    config = run_item.get("canary") or {}
    summary = canary.outcome_of_run(counted, config.get("max_failure_rate")).summary()
    now = clock.now_iso()
    timeout = config.get("decision_timeout_seconds")
    gate = {"run_id": run_item["id"], "project_id": run_item["project_id"], "gate": "canary",
            "status": ApprovalStatus.pending.value, "requested_at": now, "summary": summary}
    if timeout:
        gate["decide_by"] = clock.plus_seconds(now, int(timeout))
        gate["on_timeout"] = config.get("on_timeout", "reject")
    effect.set.update({"status": RunStatus.awaiting_approval.value, "gate": "canary",
                       "canary_state": CanaryState.gate.value})
    effect.event_data.update({"run_status": RunStatus.awaiting_approval.value, "gate": "canary", "canary": summary})
    effect.operations += open_gate(gate)
    effect.outbox += answer_run_wait(run_item, effect, RunStatus.awaiting_approval, next_="canary")


def settle(run_item: dict[str, Any], counted: dict[str, Any], effect: RunEffect,
           open_gate: Callable[..., list[dict[str, Any]]]) -> None:
    """Once every task ended: the deploy gate, success or failure (and the run execution told)."""
    new_status = status_when_all_finished(counted, bool(run_item.get("deploy_gate", True)),
                                          released=bool(run_item.get("release_task_id")))
    if not new_status:
        return
    if run_item.get("rollback_task_id") and new_status == RunStatus.succeeded:
        new_status = RunStatus.rolled_back   # the rollback task was the last one open, and it is done
    effect.set["status"] = new_status.value
    effect.event_data["run_status"] = new_status.value
    if new_status == RunStatus.awaiting_approval:
        effect.set["gate"] = "deploy"
        effect.operations += open_gate(
            {"run_id": run_item["id"], "project_id": run_item["project_id"], "gate": "deploy",
             "status": ApprovalStatus.pending.value, "requested_at": clock.now_iso()})
    effect.outbox += answer_run_wait(run_item, effect, new_status)


def answer_run_wait(run_item: dict[str, Any], effect: RunEffect, new_status: RunStatus,
                    next_: Optional[str] = None) -> list[AnswerToken]:
    token = run_item.get("wait_token")
    if not token:
        return []
    effect.remove.append("wait_token")
    return [AnswerToken(token=token, output={"next": next_ or RUN_OUTCOME[new_status]})]
