"""Handoffs: the written baton one agent passes the next (what was done, decided, left open).

A handoff is written on a task by an agent with the ``work`` right, backed by stored proofs of
that task, and then walks ``created → accepted → completed`` (or ``failed``). Every change is
audited in the run's event log, in the same transaction.
"""

from __future__ import annotations

from typing import Optional

from ..adapters.dynamodb import Page, Repositories
from ..domain import clock, ids
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import ConflictError, NotFoundError
from ..domain.handoffs import Handoff, HandoffAction, HandoffCreate, HandoffNote, HandoffStatus, HandoffTransition, next_handoff_status
from ..domain.ids import is_valid_id, new_id
from .proofs import cited_proofs
from .tasks import TaskService



class HandoffService:
    def __init__(self, repos: Repositories, tasks: TaskService):
        self.repos = repos
        self.tasks = tasks

    # ---- reads

    def get(self, principal: Principal, handoff_id: str, action: Action = Action.read) -> Handoff:
        handoff = self.repos.handoffs.get(handoff_id) if is_valid_id(handoff_id, ids.HANDOFF) else None
        if handoff is None:
            raise NotFoundError("handoff not found")
        authorize(principal, action, project_id=handoff.project_id, task_id=handoff.task_id, what="handoff")
        return handoff

    def list(self, principal: Principal, task_id: str, limit: int, cursor: Optional[str]) -> Page:
        """The task's handoffs, newest first."""
        self.tasks.get(principal, task_id)
        return self.repos.handoffs.of_task(task_id, limit, cursor)

    # ---- writes

    def create(self, principal: Principal, task_id: str, request: HandoffCreate) -> Handoff:
        task = self.tasks.get_under_claim(principal, task_id)
        cited_proofs(self.repos.proofs, request.proof_ids, owner=f"task {task.id}",
                     when="before citing them in a handoff", belongs=lambda proof: proof.task_id == task.id)
        now = clock.now_iso()
        handoff = Handoff(id=new_id(ids.HANDOFF), task_id=task.id, run_id=task.run_id, project_id=task.project_id,
                          stage=task.stage.value, iteration=task.iteration, **request.model_dump(),
                          status=HandoffStatus.created,
                          transitions=[HandoffTransition(status=HandoffStatus.created, at=now, by=principal.actor)],
                          created_by=principal.actor, created_at=now, updated_at=now)
        with self.repos.handoffs.within_cap(task.id):
            self.repos.audit.commit(run_id=task.run_id, actor=principal.actor, action="handoff.created",
                              entity=f"handoff:{handoff.id}",
                              data={"task_id": task.id, "from_role": handoff.from_role.value,
                                    "to_role": handoff.to_role.value, "stage": handoff.stage,
                                    "iteration": handoff.iteration, "confidence": handoff.confidence.value,
                                    "proof_ids": handoff.proof_ids},
                              operations=self.repos.handoffs.create_ops(handoff))
        return handoff

    def transition(self, principal: Principal, handoff_id: str, action: HandoffAction, note: HandoffNote) -> Handoff:
        """accept / complete / fail; 409 when the lifecycle does not allow it from the current status."""
        handoff = self.get(principal, handoff_id, Action.work)
        self.tasks.get_under_claim(principal, handoff.task_id)   # an agent moves a handoff only under its live claim
        target = next_handoff_status(handoff.status, action)
        now = clock.now_iso()
        after = handoff.model_copy(update={
            "status": target, "updated_at": now, "version": handoff.version + 1,
            "transitions": [*handoff.transitions,
                            HandoffTransition(status=target, at=now, by=principal.actor, notes=note.notes)]})
        try:
            self.repos.audit.commit(run_id=handoff.run_id, actor=principal.actor, action=f"handoff.{target.value}",
                              entity=f"handoff:{handoff.id}",
                              data={"task_id": handoff.task_id, "from_status": handoff.status.value,
                                    "to_status": target.value, "notes": note.notes[:2000]},
                              operations=[self.repos.handoffs.replace_op(after, handoff.version)])
        except ConflictError:
            # Someone moved it first: answer from what it is now (an illegal transition is a 409 too).
            current = self.repos.handoffs.get(handoff.id)
            if current is not None:
                next_handoff_status(current.status, action)
            raise
        return after

