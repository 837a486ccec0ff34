"""Approval gates: a person decides whether a run goes on.

* ``canary``: the canary tasks ended; approve starts the rest, reject cancels it and fails the run.
* ``deploy``: every task ended; approve creates the release task (stage ``cicd``) in the same
  transaction, reject fails the run.
* ``budget``: the run used its ``max_cost_usd`` / ``max_tokens``; approve raises the ceiling
  (``raise_cost_usd`` / ``raise_tokens``) and the run goes on, reject cancels what is left and
  fails the run.

Each decision answers the run execution waiting on the gate (if it waits there) in the same
transaction's outbox. A gate with ``decide_by`` is decided by its ``on_timeout`` once overdue
(``decide_overdue``, run by the sweeper); a canary that exceeded its ``max_failure_rate`` is never
approved by a timeout.
"""

from __future__ import annotations

from typing import Any, Optional

from ..adapters.dynamodb import Repositories, RunEffect
from ..domain import clock, usage
from ..domain.auth import Action, Principal
from ..domain.entities import Approval
from ..domain.enums import GATES, ApprovalDecision, ApprovalStatus, CanaryState, RunStatus, TaskSource
from ..domain.errors import ConflictError, InvalidInputError, NotFoundError, RuleViolationError
from ..domain.messages import AnswerToken, CancelMessage, Enqueue, OutboxRecord, ResumeMessage
from ..domain.requests import ApprovalRequest
from . import run_effects
from .attention import gate_opener, gate_resolution_ops, wait_at_budget_gate
from .run_effects import answer_run_wait, gate_answer
from .runs import RunService
from .tasks import TaskService

TIMEOUT_ACTOR = "system:gate-timeout"


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
        raising = request.raise_cost_usd is not None or request.raise_tokens is not None
        approve = request.decision == ApprovalDecision.approve
        if raising and (gate != "budget" or not approve):
            raise InvalidInputError("raise_cost_usd and raise_tokens go with approving the budget gate only",
                                    code="raise_not_applicable")
        if gate == "budget" and approve and not raising:
            raise InvalidInputError("approving the budget gate raises the budget: give raise_cost_usd or "
                                    "raise_tokens (how much more the run may use)", code="raise_required")
        return self._decide(item, current, gate, approve, principal.actor, request.comment,
                            raise_cost_usd=request.raise_cost_usd, raise_tokens=request.raise_tokens)

    def decide_overdue(self, now: str, limit: int = 50) -> int:
        """Apply ``on_timeout`` to pending gates past their deadline; returns how many it decided."""
        decided = 0
        for gate_item in self.repos.approvals.overdue(now, limit):
            run_item = self.repos.runs.get_item(gate_item["run_id"])
            current = self.repos.approvals.get(gate_item["run_id"], gate_item["gate"])
            if run_item is None or current is None or current.get("status") != ApprovalStatus.pending.value:
                continue
            exceeded = bool((current.get("summary") or {}).get("exceeded"))
            approve = current.get("on_timeout") == ApprovalDecision.approve.value and not exceeded
            comment = (f"no decision within the deadline ({current.get('decide_by')}): on_timeout "
                       f"{current.get('on_timeout', 'reject')}" + ("; the canary exceeded its failure rate, so "
                                                                    "it is rejected" if exceeded else ""))
            try:
                self._decide(run_item, current, gate_item["gate"], approve, TIMEOUT_ACTOR, comment)
                decided += 1
            except ConflictError:
                continue   # decided by a person meanwhile, or the run moved on
        return decided

    # ---- one decision

    def _decide(self, item: dict[str, Any], current: dict[str, Any], gate: str, approve: bool, actor: str,
                comment: str, *, raise_cost_usd: Optional[float] = None,
                raise_tokens: Optional[int] = None) -> Approval:
        run_id = item["id"]
        decided = {**{k: v for k, v in current.items() if k not in ("pk", "sk", "type", "token")},
                   "status": (ApprovalStatus.approved if approve else ApprovalStatus.rejected).value,
                   "decision": (ApprovalDecision.approve if approve else ApprovalDecision.reject).value,
                   "decided_by": actor, "decided_at": clock.now_iso(), "comment": comment,
                   "raise_cost_usd": raise_cost_usd, "raise_tokens": raise_tokens}
        records: list[OutboxRecord] = []
        if current.get("token"):
            records.append(AnswerToken(token=current["token"], output={"next": gate_answer(gate, approve)}))
        operations = (self.repos.approvals.decide_op(decided), *self.runs.outbox.operations(records),
                      *gate_resolution_ops(self.repos, current, by=actor, comment=comment or decided["decision"]))

        def waiting_here(run: dict[str, Any]) -> None:
            if RunStatus(run["status"]) != RunStatus.awaiting_approval or run.get("gate", "deploy") != gate:
                raise ConflictError(f"run {run_id} is {run['status']}, not waiting at its {gate} gate",
                                    code="run_not_waiting")

        event = {"gate": gate, "decision": decided["decision"], "comment": comment}
        if gate == "deploy" and approve:
            self.tasks.create(
                item, title=f"Release: {item['title']}"[:200], description=f"Deploy the work of run {run_id}, "
                f"approved by {actor}. {comment}"[:10_000], priority=10,
                source=TaskSource.release, parent_task_id=None, actor=actor, operations=operations,
                check_run=waiting_here, run_set_fn=lambda run, t: {"release_task_id": t},
                event_data={"approval": event})
            self.runs.outbox.deliver(records)
            return to_approval(decided)

        def on_run(run: dict[str, Any]) -> RunEffect:
            waiting_here(run)
            effect = RunEffect(remove=["gate"], event_data=dict(event))
            if not approve:
                effect.set.update({"status": RunStatus.failed.value})
                if gate == "canary":
                    effect.set["canary_state"] = CanaryState.rejected.value
                effect.outbox += answer_run_wait(run, effect, RunStatus.failed)
                effect.outbox += self._cancel_what_is_left(run_id, actor)
                return effect
            effect.set["status"] = RunStatus.running.value
            effect.outbox.append(Enqueue(body=ResumeMessage(run_id=run_id, actor=actor)))
            if gate == "canary":
                effect.set["canary_state"] = CanaryState.approved.value
                budget = usage.budget_of_run(run)
                if budget.state == usage.BudgetState.exhausted:
                    # The canary spent the budget: the rest waits for a raise (the budget gate).
                    effect.remove.remove("gate")
                    wait_at_budget_gate(self.repos, run, budget, effect)
                return effect
            # budget: the raised ceilings, and the run settles if every task ended meanwhile
            ceilings = dict(run.get("ceilings") or {})
            if raise_cost_usd is not None:
                ceilings["max_cost_usd"] = round(float(ceilings.get("max_cost_usd") or 0) + raise_cost_usd, 6)
            if raise_tokens is not None:
                ceilings["max_tokens"] = int(ceilings.get("max_tokens") or 0) + raise_tokens
            budget = usage.budget_of_run({**run, "ceilings": ceilings})
            if budget.state == usage.BudgetState.exhausted:
                raise RuleViolationError(
                    f"the raise leaves run {run_id} at {budget.used_fraction:.0%} of its budget; raise it further",
                    code="raise_too_small")
            effect.set.update({"ceilings": ceilings, "budget_state": budget.state.value})
            effect.event_data.update({"ceilings": ceilings, "budget": budget.model_dump(mode="json")})
            run_effects.settle({**run, **effect.set}, run, effect, gate_opener(self.repos))
            if "gate" in effect.set:   # every task ended meanwhile: now the deploy gate
                effect.remove.remove("gate")
            return effect

        committed = self.repos.audit.commit(run_id=run_id, actor=actor,
                                            action=f"approval.{'approved' if approve else 'rejected'}",
                                            entity=f"run:{run_id}", data={"gate": gate}, operations=operations,
                                            run_item=item, on_run=on_run)
        self.runs.outbox.deliver(records + committed.effect.outbox)
        if not self.runs.sfn:   # no dispatcher: do here what its messages would
            if approve:
                self.runs.release_held(run_id, actor)
            else:
                self.runs.cancel_open_tasks(run_id, actor)
        return to_approval(decided)

    def _cancel_what_is_left(self, run_id: str, actor: str) -> list[OutboxRecord]:
        return [Enqueue(body=CancelMessage(run_id=run_id, actor=actor))] if self.runs.sfn else []


__all__ = ["ApprovalService"]
