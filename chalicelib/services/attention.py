"""Attention: what waits for a person, across projects (``GET /attention``).

Items are opened in the transaction of what raised them: a gate (``approval`` for canary and
deploy, ``budget``), a task waiting for an agent past its run's queue timeout (``stuck``), the
director's escalations and idle queues. A gate's item is resolved in its decision's transaction;
a person resolves any item with ``POST /attention/{id}/resolve`` (which decides nothing: a gate
is decided at ``POST /runs/{id}/approvals/{gate}``). Resolving the item of a task the director
paused resumes the task, in the same transaction (a ``task.resumed`` event).
"""

from __future__ import annotations

from typing import Any, Optional

from ..adapters.dynamodb import Page, Repositories, RunEffect
from ..adapters.pagination import decode_cursor, encode_cursor
from ..domain import clock, ids
from ..domain.auth import Action, Principal, authorize
from ..domain.director.model import supervision_of
from ..domain.entities import AttentionItem
from ..domain.enums import ApprovalStatus, AttentionKind, AttentionStatus, Hold, RunStatus
from ..domain.errors import ConflictError, InvalidInputError, NotFoundError
from ..domain.ids import is_valid_id, new_id
from ..domain.usage import Budget

GATE_SUMMARIES = {"canary": "the canary ended: decide whether the rest of the run starts",
                  "deploy": "every task ended: decide whether the run's work is released",
                  "budget": "the run used its budget: raise it, or stop the run"}


def gate_ops(repos: Repositories, gate: dict[str, Any], project_id: str, *,
             reopen_approved: bool = False) -> list[dict[str, Any]]:
    """Open a gate and the attention item that asks a person to decide it, in one transaction."""
    item = AttentionItem(
        id=new_id(ids.ATTENTION), kind=AttentionKind.budget if gate["gate"] == "budget" else AttentionKind.approval,
        project_id=project_id, run_id=gate["run_id"], summary=GATE_SUMMARIES.get(gate["gate"], "a gate is pending"),
        details={"gate": gate["gate"], **({"summary": gate["summary"]} if gate.get("summary") else {})},
        created_at=gate.get("requested_at") or clock.now_iso())
    return [repos.approvals.open_op({**gate, "project_id": project_id, "attention_id": item.id,
                                     "attention_created_at": item.created_at}, reopen_approved=reopen_approved),
            repos.attention.open_op(item)]


def gate_opener(repos: Repositories, *, reopen_approved: bool = False) -> Any:
    """``open_gate`` for ``run_effects``: a gate dict (with ``project_id``) → its operations."""
    return lambda gate: gate_ops(repos, gate, gate["project_id"], reopen_approved=reopen_approved)


def wait_at_budget_gate(repos: Repositories, run_item: dict[str, Any], budget: Budget, effect: RunEffect) -> None:
    """The run waits at its budget gate: its status and gate, and the gate opened (again: a budget
    gate approved with a raise opens anew when the raised budget is used up) with its attention item."""
    effect.set.update({"status": RunStatus.awaiting_approval.value, "gate": "budget"})
    effect.operations += gate_ops(
        repos, {"run_id": run_item["id"], "gate": "budget", "status": ApprovalStatus.pending.value,
                "requested_at": clock.now_iso(), "summary": budget.model_dump(mode="json")},
        run_item["project_id"], reopen_approved=True)


def gate_resolution_ops(repos: Repositories, approval: dict[str, Any], *, by: str, comment: str) -> list[dict[str, Any]]:
    """The gate's attention item resolved with its decision (none for gates opened without one)."""
    if not approval.get("attention_id") or not approval.get("project_id"):
        return []
    return [repos.attention.resolve_op(approval["attention_id"], approval["project_id"],
                                       approval["attention_created_at"], by=by, comment=comment, only_if_open=False)]


class AttentionService:
    def __init__(self, repos: Repositories, tasks: Any = None):
        self.repos = repos
        self.tasks = tasks   # TaskService: resolving a pause resumes its task through it

    def list(self, principal: Principal, project_id: Optional[str], status: str, limit: int,
             cursor: Optional[str]) -> Page:
        """Newest first; one Query per project the caller sees (one for an admin without a project)."""
        try:
            wanted = AttentionStatus(status)
        except ValueError:
            raise InvalidInputError("status must be open or resolved", code="invalid_status") from None
        before = decode_cursor(cursor, expected={"list": "attention"}, names=frozenset({"list", "before"}))["before"] \
            if cursor else None
        if project_id is not None:
            authorize(principal, Action.read, project_id=project_id, what="project")
            projects: list[Optional[str]] = [project_id]
        elif principal.is_admin:
            projects = [None]
        else:
            authorize(principal, Action.read)
            projects = list(principal.project_ids)
        items: list[AttentionItem] = []
        for project in projects:
            items += self.repos.attention.newest(project, wanted.value, limit + 1, before)
        items.sort(key=lambda i: (i.created_at, i.id), reverse=True)
        page, more = items[:limit], len(items) > limit
        next_cursor = encode_cursor({"list": "attention", "before": f"{page[-1].created_at}#{page[-1].id}"}) \
            if more and page else None
        return Page(page, next_cursor)

    def resolve(self, principal: Principal, item_id: str, comment: str) -> AttentionItem:
        item = self.repos.attention.get(item_id) if is_valid_id(item_id, ids.ATTENTION) else None
        if item is None:
            raise NotFoundError("attention item not found")
        authorize(principal, Action.manage_project, project_id=item.project_id, what="attention item")
        resolve = self.repos.attention.resolve_op(item.id, item.project_id, item.created_at, by=principal.actor,
                                                  comment=comment)
        task = self.repos.tasks.get(item.task_id) if item.task_id and self.tasks is not None else None
        paused = supervision_of(task).paused if task is not None and task.held == Hold.director else None
        if task is not None and paused is not None and paused.attention_id == item.id:
            self._resume(principal, task, item, comment, resolve)
        elif not self.repos.table.write(resolve):
            raise ConflictError(f"attention item {item.id} is resolved already", code="already_resolved")
        return self.repos.attention.get(item.id) or item

    def _resume(self, principal: Principal, task: Any, item: AttentionItem, comment: str,
                resolve: dict[str, Any]) -> None:
        """The item paused its task: resolving it releases the task, in the same transaction."""
        from .director_actions import resume_change

        after, transition = resume_change(task, sfn=self.tasks.sfn, now=clock.now_iso())
        try:
            self.tasks.commit_change(task, after, transition, principal.actor,
                                     {"attention_id": item.id, "comment": comment, "reason": "escalation resolved"},
                                     extra_operations=(resolve,))
        except ConflictError:
            current = self.repos.attention.get(item.id)
            if current is not None and current.status == AttentionStatus.resolved:
                raise ConflictError(f"attention item {item.id} is resolved already", code="already_resolved") from None
            raise


__all__ = ["AttentionService", "gate_opener", "gate_ops", "gate_resolution_ops", "wait_at_budget_gate"]
