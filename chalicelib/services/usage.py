"""Usage and budgets: agents report what a job used; the run's roll-up and budget follow.

A report is one transaction: the task's own totals (conditioned on its version), the run's roll-up
counters (ADDed: stage, role, agent, model), the run item's two budget counters, and the audit
event. When the report takes the run past 80 % of a budget, a ``budget.warning`` follows; past
100 %, ``budget.exhausted`` opens the ``budget`` gate: the run waits (no new stage job starts; jobs
in flight finish and their usage still counts) until a person raises the budget or rejects.
"""

from __future__ import annotations

from typing import Any

from ..adapters.dynamodb import Repositories, RunEffect
from ..domain import canary, clock, ids, usage
from ..domain.auth import Action, Principal, authorize
from ..domain.enums import STAGE_ROLE, RunStatus
from ..domain.errors import ConflictError, NotFoundError
from ..domain.ids import is_valid_id
from ..domain.progress import apply_deltas
from ..domain.usage import BUDGET_ORDER, BudgetState, RunUsage, UsageReport
from .attention import wait_at_budget_gate
from .retries import on_fresh_read
from .runs import RunService
from .tasks import TaskService

ACTOR = "system:budget"


class UsageService:
    def __init__(self, repos: Repositories, tasks: TaskService, runs: RunService):
        self.repos = repos
        self.tasks = tasks
        self.runs = runs

    def report(self, principal: Principal, task_id: str, report: UsageReport) -> dict[str, Any]:
        """Record one usage report on the task (an agent: under its live claim). Returns
        ``{task_usage, run_usage}``: the task's totals and the run's, as of this report."""
        def record() -> tuple[Any, dict[str, Any]]:
            task = self.tasks.get_under_claim(principal, task_id)
            role = STAGE_ROLE.get(task.stage)
            agent = task.claimed_by or principal.actor
            # Baton's own runner claims with its job id: rolled up per job, the run's usage item would
            # grow by a key set per job (past ~1,200 jobs, DynamoDB's 400 KB item limit). Its jobs
            # are rolled up per role instead; the audit event keeps the job id.
            rolled_agent = f"runner:{role.value if role else 'none'}" if principal.job_id else agent
            totals = usage.add_to_totals(task.usage, report)
            after = task.model_copy(update={"usage": totals, "version": task.version + 1,
                                            "updated_at": clock.now_iso()})
            rollup = usage.rollup_counters(report, stage=task.stage.value, role=role.value if role else "none",
                                           agent=rolled_agent)
            amounts = report.counters()
            run_counters = {usage.RUN_COST_COUNTER: amounts["cost_micros"],
                            usage.RUN_TOKENS_COUNTER: report.budget_tokens}
            if task.canary:
                run_counters[canary.COST] = amounts["cost_micros"]
            committed = self.repos.audit.commit(
                run_id=task.run_id, actor=principal.actor, action="usage.reported", entity=f"task:{task.id}",
                data={**report.model_dump(mode="json", exclude_none=True), "stage": task.stage.value,
                      "agent_id": agent},
                operations=[self.repos.tasks.replace_op(after, task.version),
                            self.repos.usage.add_op(task.run_id, rollup)],
                counters=run_counters)
            return after, apply_deltas(committed.run_item, run_counters)

        task, run_after = on_fresh_read(record)
        self.check_budget(task.run_id, run_after)
        return {"task_usage": (task.usage or usage.UsageTotals()).model_dump(mode="json"),
                "run_usage": {"cost_usd": int(run_after.get(usage.RUN_COST_COUNTER, 0) or 0) / usage.MICROS,
                              "tokens": int(run_after.get(usage.RUN_TOKENS_COUNTER, 0) or 0),
                              "budget": usage.budget_of_run(run_after).model_dump(mode="json")}}

    def check_budget(self, run_id: str, run_item: dict[str, Any]) -> None:
        """Move the run's budget state forward when a report crossed 80 % or 100 % (once each)."""
        budget = usage.budget_of_run(run_item)
        recorded = BudgetState(run_item.get("budget_state") or BudgetState.ok.value)
        if BUDGET_ORDER[budget.state] <= BUDGET_ORDER[recorded]:
            return

        def escalate(current: dict[str, Any]) -> RunEffect:
            now_budget = usage.budget_of_run(current)
            now_recorded = BudgetState(current.get("budget_state") or BudgetState.ok.value)
            if BUDGET_ORDER[now_budget.state] <= BUDGET_ORDER[now_recorded]:
                raise ConflictError("recorded already", code="budget_recorded")
            effect = RunEffect(set={"budget_state": now_budget.state.value},
                               event_data={"budget": now_budget.model_dump(mode="json")})
            status = RunStatus(current["status"])
            if now_budget.state == BudgetState.exhausted and status in (RunStatus.running, RunStatus.awaiting_approval) \
                    and current.get("gate") != "budget":
                if status == RunStatus.awaiting_approval:
                    return effect   # it waits at another gate; the budget is asked when it goes on
                wait_at_budget_gate(self.repos, current, now_budget, effect)
                effect.event_data["run_status"] = RunStatus.awaiting_approval.value
            return effect

        action = "budget.exhausted" if budget.state == BudgetState.exhausted else "budget.warning"
        try:
            self.repos.audit.commit(run_id=run_id, actor=ACTOR, action=action, entity=f"run:{run_id}", data={},
                                    on_run=escalate)
        except ConflictError as error:
            if error.code != "budget_recorded":
                raise

    def of_run(self, principal: Principal, run_id: str) -> RunUsage:
        """The run's usage by stage, role, agent and model, and its budget: one BatchGetItem."""
        run_item, counters = self.repos.usage.with_run(run_id) if is_valid_id(run_id, ids.RUN) else (None, {})
        if run_item is None:
            raise NotFoundError("run not found")
        authorize(principal, Action.read, project_id=run_item["project_id"], what="run")
        return RunUsage(**usage.rollup_from_counters(counters), budget=usage.budget_of_run(run_item))


__all__ = ["UsageService"]
