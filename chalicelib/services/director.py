"""The director: its settings (one item, versioned, read by everyone, changed by admins) and its
runs over the facts (``domain.director``), taking its actions (``director_actions``).

It runs in two places, with the same rules and the same idempotent actions:

* **where a fact arises**: a stage that fails (its failure fingerprint was recorded on the task in
  the advance's transaction) or a lease that expires calls ``watch`` after its transaction and
  before its Step Functions callback goes out, so a nudge, a pause or a reassignment reaches the
  task's very next job;
* **on every sweep** (``sweep``): per project and stage, one Query of the claim queue and one of the
  leases (idle queues; which runs are active); per active run, its new audit events (stage jobs in
  flight and the durations of finished ones: slow stages; failed and re-dispatched jobs the fast
  path may have missed) and its budget. No Scan.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any, Optional

from ..adapters.dynamodb import Repositories
from ..domain import clock
from ..domain.auth import Action, Principal, authorize
from ..domain.director.facts import TASK_FACT_EVENTS, fold_events
from ..domain.director.model import Reassignment, supervision_of
from ..domain.director.watches import RunWatch
from ..domain.director.rules import (BudgetFacts, QueueFacts, TaskFacts, apply_policy, budget_near_end, idle_queue,
                                     may_fire, median_or_none, slow_stage, task_rules)
from ..domain.entities import DirectorSettings, Task
from ..domain.enums import TERMINAL_RUN_STATUSES, RunStatus, Stage, TaskStatus
from ..domain.pipeline import Transition
from ..domain.requests import DirectorSettingsPatch
from ..domain.roles import Executor
from ..domain.usage import budget_of_run
from .director_actions import DirectorActions, Outcome

logger = logging.getLogger("baton.director")

WORKING_STAGES = tuple(s.value for s in Stage if s not in (Stage.none, Stage.complete))
LEASES_PER_QUEUE = 100
QUEUED_PER_QUEUE = 25
EVENTS_PER_RUN = 500
RUNS_PER_BATCH = 50
SETTINGS_SECONDS = 15.0      # how long a process trusts the settings it read (a PATCH here forgets them)
ATTEMPT_RECORD_SECONDS = 60  # a process records an empty claim on a queue at most this often
WATCHED = frozenset({"task.looped_back", "task.failed", "job.lease_expired", "task.lease_expired",
                     "task.attempts_exhausted"})


class ClaimAttempts:
    """Claims that found nothing, recorded per queue (a project's stage) for the idle-queue rule: at
    most once a minute per queue and process, so a polling agent costs one write a minute, and a claim
    that wins its first candidate costs nothing (a claimed task is itself the attempt)."""

    def __init__(self, repos: Repositories, every_seconds: float = ATTEMPT_RECORD_SECONDS):
        self.repos = repos
        self.every_seconds = every_seconds
        self._last: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def record(self, project_id: str, stage: str) -> None:
        now = clock.now_iso()
        with self._lock:
            last = self._last.get((project_id, stage))
            if last is not None and last <= now < clock.plus_seconds(last, self.every_seconds):
                return
            self._last[(project_id, stage)] = now
        try:
            self.repos.director.record_attempt(project_id, stage, now)
        except Exception:   # a lost record only delays an idle report; the claim's answer stands
            logger.warning("could not record a claim attempt on %s/%s", project_id, stage, exc_info=True)


class DirectorService:
    def __init__(self, repos: Repositories, roles: Any = None, *, sfn: bool = False):
        self.repos = repos
        self.roles = roles
        self.sfn = sfn
        self.actions = DirectorActions(repos)
        self._settings: Optional[tuple[float, DirectorSettings]] = None

    # ---- settings

    def current(self, fresh: bool = True) -> DirectorSettings:
        if not fresh and self._settings is not None and time.monotonic() - self._settings[0] < SETTINGS_SECONDS:
            return self._settings[1]
        item = self.repos.settings.director()
        settings = DirectorSettings(**{k: v for k, v in (item or {}).items() if k in DirectorSettings.model_fields})
        self._settings = (time.monotonic(), settings)
        return settings

    def get(self, principal: Principal) -> DirectorSettings:
        authorize(principal, Action.read)
        return self.current()

    def patch(self, principal: Principal, request: DirectorSettingsPatch) -> DirectorSettings:
        authorize(principal, Action.manage_roles)
        current = self.current()
        updated = current.model_copy(update={**request.model_dump(exclude_unset=True), "version": current.version + 1,
                                             "updated_at": clock.now_iso(), "updated_by": principal.actor})
        self.repos.settings.replace_director(updated.model_dump(mode="json"), current.version)
        self._settings = None
        return updated

    # ---- where a fact arises

    def watch(self, task: Task, transition: Transition, run_item: Optional[dict[str, Any]] = None) -> None:
        """After a task change was committed, before its callbacks go out: the task rules, when the
        change brought a fact they read (a failure, a lease loss). Never fails the change."""
        if transition.action not in WATCHED or not may_fire(task, int((run_item or {}).get("max_iterations") or 0)):
            return
        try:
            self.evaluate_task(task, run_item)
        except Exception:
            logger.exception("the director could not evaluate task %s", task.id,
                             extra={"task_id": task.id, "run_id": task.run_id})

    def evaluate_task(self, task: Optional[Task], run_item: Optional[dict[str, Any]] = None,
                      settings: Optional[DirectorSettings] = None) -> Counter:
        """Run the task rules on ``task`` and take what they propose; on a concurrent change, read the
        task again and decide again (at most a few times)."""
        settings = settings or self.current(fresh=False)
        taken: Counter = Counter()
        for _attempt in range(3):
            if task is None or not settings.director_enabled:
                return taken
            run_item = run_item or self.repos.runs.get_item(task.run_id) or {}
            facts = TaskFacts.of(task, int(run_item.get("max_iterations") or 0), self._fallback(task, run_item))
            stale = False
            for action in task_rules(facts, settings, clock.now_iso()):
                outcome = self.actions.on_task(task, action, settings)
                if outcome == Outcome.stale:
                    stale = True
                    break
                taken[f"{action.kind.value}:{outcome.value}"] += 1
                task = self.repos.tasks.get(task.id) if outcome == Outcome.taken else task
                if task is None:
                    break
            if not stale:
                return taken
            task = self.repos.tasks.get(task.id)
        return taken

    def _fallback(self, task: Task, run_item: dict[str, Any]) -> Optional[Reassignment]:
        """Where the task's role lets its stage's next job go; only looked up when lease churn may fire."""
        losses = supervision_of(task).lease_losses
        if self.roles is None or losses is None or losses.count < 1 or task.stage.value not in WORKING_STAGES:
            return None
        config = self.roles.pinned_for_stage(run_item, task.stage)
        current = config.executor.value
        target = config.fallback_executor.value if config.fallback_executor and self.sfn else None
        agents = list(config.fallback_agent_ids)
        if target and target != current:
            return Reassignment(stage=task.stage.value, iteration=task.iteration, executor=target,
                                agent_ids=agents if target == Executor.external.value else [])
        if agents and (current == Executor.external.value or not self.sfn):
            return Reassignment(stage=task.stage.value, iteration=task.iteration, agent_ids=agents)
        return None

    # ---- the sweep

    def sweep(self, now: Optional[str] = None) -> dict[str, int]:
        """One pass over what the director watches; counts of what it found and did."""
        settings = self.current()
        if not settings.director_enabled:
            return {}
        now = now or clock.now_iso()
        counts: Counter = Counter()
        queues: dict[tuple[str, str], tuple[list[Task], list[Task]]] = {}
        for project in self.repos.projects.all():
            for stage in WORKING_STAGES:
                leased = self.repos.tasks.leased(project.id, stage, LEASES_PER_QUEUE)
                queued = self.repos.tasks.queued(project.id, stage, QUEUED_PER_QUEUE)
                if leased or queued:
                    queues[(project.id, stage)] = (leased, queued)
        runs = sorted({t.run_id for leased, queued in queues.values() for t in [*leased, *queued]})
        claims: dict[tuple[str, str], str] = {}   # the latest claim seen in the runs' logs, per queue
        for start in range(0, len(runs), RUNS_PER_BATCH):
            for run_item, watch in self.repos.director.runs_with_watches(runs[start:start + RUNS_PER_BATCH]).values():
                try:
                    counts.update(self._run(run_item, watch, settings, now, claims))
                except Exception:
                    logger.exception("the director could not watch run %s", run_item.get("id"),
                                     extra={"run_id": run_item.get("id")})
        for (project_id, stage), (leased, queued) in sorted(queues.items()):
            if queued:
                counts.update(self._idle_queue(project_id, stage, queued, leased, claims.get((project_id, stage)),
                                               settings, now))
        counts["runs_watched"] = len(runs)
        return dict(counts)

    def _idle_queue(self, project_id: str, stage: str, queued: list[Task], leased: list[Task],
                    claimed_at: Optional[str], settings: DirectorSettings, now: str) -> Counter:
        oldest = min((t for t in queued if t.enqueued_at), key=lambda t: str(t.enqueued_at), default=None)
        if oldest is None or not settings.idle_queue_minutes \
                or str(oldest.enqueued_at) > clock.plus_seconds(now, -60 * settings.idle_queue_minutes):
            return Counter()
        run_item = self.repos.runs.get_item(oldest.run_id) or {}
        external = self.roles is None or \
            self.roles.pinned_for_stage(run_item, Stage(stage)).executor == Executor.external
        record = self.repos.director.queue(project_id, stage)
        if claimed_at and claimed_at > (record.last_attempt_at or ""):   # remembered for the next sweeps
            self.repos.director.record_attempt(project_id, stage, claimed_at)
        attempts = [a for a in [record.last_attempt_at, claimed_at, *(t.updated_at for t in leased)] if a]
        facts = QueueFacts(project_id=project_id, stage=stage, external=external, queued=len(queued),
                           oldest_task_id=oldest.id, oldest_run_id=oldest.run_id,
                           oldest_enqueued_at=str(oldest.enqueued_at), last_attempt_at=max(attempts, default=None),
                           idle_reported_at=record.idle_reported_at)
        taken: Counter = Counter()
        for action in idle_queue(facts, settings, now):
            taken[f"idle_queue:{self.actions.on_queue(action, settings, record.idle_reported_at).value}"] += 1
        return taken

    def _run(self, run_item: dict[str, Any], watch: RunWatch, settings: DirectorSettings, now: str,
             claims: dict[tuple[str, str], str]) -> Counter:
        run_id = run_item["id"]
        taken: Counter = Counter()
        if RunStatus(run_item["status"]) in TERMINAL_RUN_STATUSES:
            return taken
        events = self.repos.audit.events_after(run_id, watch.seen_seq, EVENTS_PER_RUN)
        folded, touched, claimed = fold_events(watch, [e.model_dump() for e in events])
        for stage, at in claimed.items():
            queue = (run_item["project_id"], stage)
            claims[queue] = max(claims.get(queue, ""), at)
        for task_id in sorted(touched):   # the fast path's fallback: idempotent, usually nothing left to do
            taken.update(self.evaluate_task(self.repos.tasks.get(task_id), run_item, settings))
        for task_id, job in sorted(folded.started.items()):
            taken.update(self._slow(task_id, job.at, job.stage, folded.durations.get(job.stage, []), run_item,
                                    settings, now))
        budget = budget_of_run(run_item)
        facts = BudgetFacts(project_id=run_item["project_id"], run_id=run_id, used_fraction=budget.used_fraction,
                            max_cost_usd=budget.max_cost_usd, max_tokens=budget.max_tokens,
                            escalated_for=folded.budget_escalated_for)
        for action in budget_near_end(facts, settings, now):
            outcome = self.actions.on_run(action, settings, folded, facts.signature)
            taken[f"budget:{outcome.value}"] += 1
            if outcome == Outcome.taken:
                return taken   # the watch was written with the escalation
        if folded != watch:
            self.repos.director.save_watch(run_id, folded)
        return taken

    def _slow(self, task_id: str, started_at: str, stage: str, peers: list[float], run_item: dict[str, Any],
              settings: DirectorSettings, now: str) -> Counter:
        median = median_or_none(peers, settings.slow_stage_min_peers)
        elapsed = (clock.parse_iso(now) - clock.parse_iso(started_at)).total_seconds()
        if median is None or not settings.slow_stage_factor or elapsed < settings.slow_stage_min_seconds \
                or elapsed <= settings.slow_stage_factor * median:
            return Counter()   # decided without reading the task
        task = self.repos.tasks.get(task_id)
        if task is None or task.status != TaskStatus.in_progress or task.stage.value != stage:
            return Counter()
        facts = TaskFacts.of(task, int(run_item.get("max_iterations") or 0))
        taken: Counter = Counter()
        for action in apply_policy(slow_stage(facts, started_at, peers, settings, now), facts, settings, now):
            outcome = self.actions.on_task(task, action, settings)
            taken[f"{action.kind.value}:{outcome.value}"] += 1
            if outcome != Outcome.taken:
                break
            task = self.repos.tasks.get(task_id) or task
        return taken


__all__ = ["ClaimAttempts", "DirectorService", "TASK_FACT_EVENTS", "WATCHED"]
