"""The sweeper: what the scheduled function does each minute.

* delivers the callbacks the outbox still holds (their first delivery failed; older than half a
  minute, so one whose request is delivering it right now is not sent twice);
* re-dispatches the jobs whose lease expired (an agent that went silent, a container that never
  started) — or, without Step Functions, puts their task back in the queue;
* reports the tasks that waited unclaimed past their run's queue timeout (once per wait);
* decides the gates whose decision deadline passed, by their ``on_timeout``;
* every ten minutes, reconciles: restarts the executions of open tasks and runs that have none
  (``reconciler``); the local stack also asks for it after restoring a snapshot;
* runs the director's rules (``services.director``): idle queues, slow stages, budgets near their
  end, and what the rules that run where a fact arises may have missed.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from ..adapters.dynamodb import Repositories
from ..domain import clock
from ..domain.enums import Stage
from .outbox import Outbox
from .reconciler import Reconciler
from .tasks import TaskService

logger = logging.getLogger("baton.sweeper")

WORKING_STAGES = tuple(s for s in Stage if s not in (Stage.none, Stage.complete))
LEASES_PER_QUEUE = 50
# A callback younger than this is most likely being delivered by the request that committed it:
# the sweeper would only send it twice (harmless, the second is refused, but a wasted call).
OUTBOX_GRACE_SECONDS = 30.0
RECONCILE_EVERY_MINUTES = 10


class Sweeper:
    def __init__(self, repos: Repositories, outbox: Outbox, tasks: TaskService, approvals: Any = None,
                 outbox_grace_seconds: float = OUTBOX_GRACE_SECONDS, director: Any = None):
        self.repos = repos
        self.director = director
        self.outbox = outbox
        self.tasks = tasks
        self.approvals = approvals
        self.reconciler = Reconciler(repos, outbox)
        self._reconciled_mark = ""
        self.outbox_grace_seconds = outbox_grace_seconds

    def reconcile(self, settle_seconds: Optional[float] = 0) -> int:
        """Restart the executions that should run and do not (see ``services.reconciler``). Called by
        hand (the local stack after a restore) it looks at everything; the schedule leaves what
        changed in the last minute alone."""
        return self.reconciler.reconcile(settle_seconds)

    def sweep_once(self, limit: int = 200, reconcile: Optional[bool] = None) -> dict[str, Any]:
        delivered = self.outbox.sweep(limit, min_age_seconds=self.outbox_grace_seconds)
        now = clock.now_iso()
        if reconcile is None:   # in the minute of each ten-minute mark, once per process
            mark = now[:16]
            reconcile = clock.parse_iso(now).minute % RECONCILE_EVERY_MINUTES == 0 and mark != self._reconciled_mark
            self._reconciled_mark = mark if reconcile else self._reconciled_mark
        requeued = 0
        for project in self.repos.projects.all():
            for stage in WORKING_STAGES:
                for task in self.repos.tasks.expired_leases(project.id, stage.value, now, LEASES_PER_QUEUE):
                    if self.tasks.expire_lease(task) is not None:
                        requeued += 1
        reported = sum(1 for task in self.repos.tasks.overdue_waits(now, limit) if self.tasks.report_waiting(task))
        timed_out = self.approvals.decide_overdue(now) if self.approvals else 0
        result = {"delivered": delivered, "requeued": requeued, "waiting_reported": reported,
                  "gates_timed_out": timed_out,
                  "executions_restarted": self.reconciler.reconcile() if reconcile else 0,
                  "director": self.director.sweep(now) if self.director else {}}
        logger.info("sweep done", extra=result)
        return result


__all__ = ["Sweeper"]
