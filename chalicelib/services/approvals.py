"""Approval gates: a human approves or rejects the run's deploy.

Approving creates the run's release task (stage ``cicd``) in the same transaction and answers the
run execution waiting on the gate; rejecting fails the run.
"""

from __future__ import annotations

from typing import Any

from ..adapters.dynamodb import Repositories, RunEffect
from ..domain import clock
from ..domain.auth import Action, Principal
from ..domain.errors import ConflictError, NotFoundError
from ..domain.entities import Approval
from ..domain.enums import GATES, ApprovalDecision, ApprovalStatus, RunStatus, TaskSource
from ..domain.requests import ApprovalRequest
from ..domain.messages import AnswerToken
from .run_effects import answer_run_wait
from .runs import RunService
from .tasks import TaskService


def to_approval(item: dict[str, Any]) -> Approval:
    return Approval(**{k: v for k, v in item.items() if k in Approval.model_fields})


class ApprovalService:
    def __init__(self, repos: Repositories, runs: RunService, tasks: TaskService):
        self.repos = repos
        self.runs = runs
        self.tasks = tasks

    def list(self, principal: Principal, run_id: str) -> list[Approval]:
        self.runs.run_item(principal, run_id)
        return [to_approval(i) for i in self.repos.approvals.of_run(run_id)]

    def decide(self, principal: Principal, run_id: str, gate: str, request: ApprovalRequest) -> Approval:
        item = self.runs.run_item(principal, run_id, Action.decide_approval)
        if gate not in GATES:
            raise NotFoundError(f"gate {gate!r} does not exist; gates are {', '.join(GATES)}")
        current = self.repos.approvals.get(run_id, gate)
        if current is None or current["status"] != ApprovalStatus.pending.value:
            state = "not requested yet" if current is None else current["status"]
            raise ConflictError(f"the {gate} gate of run {run_id} is {state}; only a pending gate can be decided",
                                code="gate_not_pending")
        approve = request.decision == ApprovalDecision.approve
        now = clock.now_iso()
        decided = {**{k: v for k, v in current.items() if k not in ("pk", "sk", "type", "token")},
                   "status": (ApprovalStatus.approved if approve else ApprovalStatus.rejected).value,
                   "decision": request.decision.value, "decided_by": principal.actor, "decided_at": now,
                   "comment": request.comment}
        approval_op = self.repos.approvals.decide_op(decided)
        records = []
        if current.get("token"):
            records.append(AnswerToken(token=current["token"], output={"next": "release" if approve else "rejected"}))
        operations = (approval_op, *self.runs.outbox.operations(records))

        def awaiting(run: dict[str, Any]) -> None:
            if RunStatus(run["status"]) != RunStatus.awaiting_approval:
                raise ConflictError(f"run {run_id} is {run['status']}, not awaiting approval", code="run_not_waiting")

        if approve:
            task, committed = self.tasks.create(
                item, title=f"Release: {item['title']}"[:200], description=f"Deploy the work of run {run_id}, "
                f"approved by {principal.actor}. {request.comment}"[:10_000], priority=10,
                source=TaskSource.release, parent_task_id=None, actor=principal.actor, operations=operations,
                check_run=awaiting, run_set_fn=lambda run, t: {"release_task_id": t})
        else:
            def reject(run: dict[str, Any]) -> RunEffect:
                awaiting(run)
                effect = RunEffect(set={"status": RunStatus.failed.value},
                                   event_data={"gate": gate, "decision": "reject", "comment": request.comment})
                effect.outbox += answer_run_wait(run, effect, RunStatus.failed)
                return effect

            committed = self.repos.audit.commit(run_id=run_id, actor=principal.actor, action="approval.rejected",
                                          entity=f"run:{run_id}", data={"gate": gate}, operations=operations,
                                          run_item=item, on_run=reject)
            self.runs.outbox.deliver(committed.effect.outbox)
        self.runs.outbox.deliver(records)
        return to_approval(decided)


__all__ = ["ApprovalService"]
