"""The director's actions: each one audited transaction, its event ``director.{kind}`` carrying the
rule and its evidence.

* ``nudge``: a note on the task (``director_notes`` in its next job's context and prompt);
* ``escalate``: an attention item (``escalation``, or ``idle_queue``), counted against the project's
  hourly limit in the same transaction;
* ``pause_task``: an escalation whose item holds the task (``held: director``: in no queue, no job
  starts) until a person resumes it: ``POST /tasks/{id}/stage``, or resolving the item;
* ``reassign``: the stage's next job to the role's fallback executor, or reserved for its fallback
  agent ids.

A task action writes the task conditioned on the version the director read and records the
action's key in its supervision, so the same action is never taken twice. None of them changes a
verdict, a stage or an iteration.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any, Optional

from ..adapters.dynamodb import Repositories
from ..domain import clock, ids
from ..domain.director.facts import after_action, resumed
from ..domain.director.actions import DirectorAction
from ..domain.director.model import ActionKind, Pause, supervision_of
from ..domain.director.watches import RunWatch
from ..domain.director.rules import escalation_window
from ..domain.entities import AttentionItem, DirectorSettings, Task
from ..domain.enums import Hold, TaskStatus
from ..domain.errors import ConflictError
from ..domain.ids import new_id
from ..domain.pipeline import Transition

logger = logging.getLogger("baton.director")

ACTOR = "system:director"


class Outcome(str, Enum):
    taken = "taken"
    rate_limited = "rate_limited"
    stale = "stale"           # the task (or record) changed since it was read: read again, decide again


def attention_for(action: DirectorAction, now: str) -> AttentionItem:
    details: dict[str, Any] = {"rule": action.rule.value, "action": action.kind.value, "evidence": action.evidence,
                               "key": action.key}
    if action.kind == ActionKind.pause_task:
        details["paused"] = True
        details["resume"] = "resolve this item, or move the task with POST /tasks/{id}/stage"
    return AttentionItem(id=new_id(ids.ATTENTION), kind=action.attention_kind, project_id=action.project_id,
                         run_id=action.run_id, task_id=action.task_id, summary=action.message, details=details,
                         created_at=now)


class DirectorActions:
    def __init__(self, repos: Repositories):
        self.repos = repos

    def _escalation_ops(self, action: DirectorAction, settings: DirectorSettings, now: str,
                        item: AttentionItem) -> list[dict[str, Any]]:
        return [self.repos.attention.open_op(item),
                self.repos.director.count_escalation_op(action.project_id, escalation_window(now),
                                                        settings.max_escalations_per_project_per_hour)]

    def _commit(self, action: DirectorAction, operations: list[dict[str, Any]], settings: DirectorSettings,
                now: str, item: Optional[AttentionItem] = None) -> Outcome:
        data = action.event_data()
        if item is not None:
            data["attention_id"] = item.id
        try:
            self.repos.audit.commit(run_id=action.run_id, actor=ACTOR, action=f"director.{action.kind.value}",
                                    entity=f"task:{action.task_id}" if action.task_id else f"run:{action.run_id}",
                                    data=data, operations=operations)
        except ConflictError:
            limit = settings.max_escalations_per_project_per_hour
            if item is not None and limit and \
                    self.repos.director.escalations(action.project_id, escalation_window(now)) >= limit:
                logger.warning("escalation not opened: project %s reached %d escalations this hour (%s)",
                               action.project_id, limit, action.key, extra={"run_id": action.run_id,
                                                                           "task_id": action.task_id})
                return Outcome.rate_limited
            return Outcome.stale
        logger.info("director %s (%s)", action.kind.value, action.key,
                    extra={"run_id": action.run_id, "task_id": action.task_id, "rule": action.rule.value})
        return Outcome.taken

    # ---- actions on a task

    def on_task(self, task: Task, action: DirectorAction, settings: DirectorSettings) -> Outcome:
        """Take ``action`` on ``task`` as read (its version): one transaction with its event."""
        current = supervision_of(task)
        if action.key in current.done:
            return Outcome.taken
        now = clock.now_iso()
        item = attention_for(action, now) if action.kind in (ActionKind.escalate, ActionKind.pause_task) else None
        pause = Pause(attention_id=item.id, attention_created_at=item.created_at, rule=action.rule, at=now) \
            if item is not None and action.kind == ActionKind.pause_task else None
        update: dict[str, Any] = {"supervision": after_action(current, action, now, iteration=task.iteration,
                                                              pause=pause).stored(),
                                  "version": task.version + 1, "updated_at": now}
        if pause is not None:
            update["held"] = Hold.director
        after = task.model_copy(update=update)
        operations = [self.repos.tasks.replace_op(after, task.version)]
        if item is not None:
            operations += self._escalation_ops(action, settings, now, item)
        return self._commit(action, operations, settings, now, item)

    # ---- actions on a run or a queue

    def on_run(self, action: DirectorAction, settings: DirectorSettings, watch: RunWatch,
               signature: str) -> Outcome:
        """A run-level escalation (its budget), recorded in the run's watch in the same transaction."""
        now = clock.now_iso()
        item = attention_for(action, now)
        operations = [self.repos.director.watch_op(action.run_id, watch.model_copy(
            update={"budget_escalated_for": signature})), *self._escalation_ops(action, settings, now, item)]
        return self._commit(action, operations, settings, now, item)

    def on_queue(self, action: DirectorAction, settings: DirectorSettings, reported_before: Optional[str]) -> Outcome:
        """An idle queue's report, recorded in the queue's watch in the same transaction (in the audit
        log of the run whose task waits longest)."""
        now = clock.now_iso()
        item = attention_for(action, now)
        operations = [self.repos.director.idle_reported_op(action.project_id, str(action.stage), now,
                                                           reported_before),
                      *self._escalation_ops(action, settings, now, item)]
        return self._commit(action, operations, settings, now, item)


def resume_change(task: Task, *, sfn: bool, now: str) -> tuple[Task, Transition]:
    """A paused task released: in the queue again (without Step Functions at once; with them, its
    stage job dispatched again when one was waiting, see ``run_effects.answer_stage_job``)."""
    update: dict[str, Any] = {"held": None, "supervision": resumed(supervision_of(task)).stored(),
                              "version": task.version + 1, "updated_at": now}
    if task.status == TaskStatus.queued and not sfn:
        update["enqueued_at"] = now
    after = task.model_copy(update=update)
    return after, Transition("task.resumed", task.stage, after.stage, task.status, after.status)


def pause_resolution_ops(repos: Repositories, task: Task, *, by: str, comment: str) -> tuple[dict[str, Any], ...]:
    """The pause's attention item resolved along with what resumed the task (a new stage by hand)."""
    paused = supervision_of(task).paused
    if task.held != Hold.director or paused is None:
        return ()
    return (repos.attention.resolve_op(paused.attention_id, task.project_id, paused.attention_created_at, by=by,
                                       comment=comment, only_if_open=False),)


__all__ = ["ACTOR", "DirectorActions", "Outcome", "attention_for", "pause_resolution_ops", "resume_change"]
