"""Bug reports: a person or an agent reports a bug; it becomes a ``bug_report`` task.

The task goes into the run named in the report, or else into the project's open backlog run
(``PROJECT#{project}``/``BACKLOG`` points at it; a new one is started when there is none or it
ended). Screenshots and other stored proofs of the project are attached: the bug task gets its
own proof records of the same objects, so its context shows them.
"""

from __future__ import annotations

from typing import Any

from ..adapters.dynamodb import Repositories
from ..domain import clock, ids
from ..domain.auth import Action, Principal
from ..domain.errors import ConflictError, NotFoundError, RuleViolationError
from ..domain.bugs import BugReport
from ..domain.proofs import Proof
from ..domain.severity import SEVERITY_PRIORITY
from ..domain.ids import is_valid_id, new_id
from ..domain.entities import Task
from ..domain.enums import TERMINAL_RUN_STATUSES, PrincipalKind, RunStatus, TaskSource
from ..domain.requests import RunCreate
from .projects import ProjectService
from .proofs import cited_proofs
from .runs import RunService
from .tasks import TaskService, require_open_run

BACKLOG_ATTEMPTS = 3


def backlog_principal(project_id: str) -> Principal:
    """Baton itself, starting a project's backlog run on behalf of whoever reported the bug (an agent
    may report bugs but not start runs)."""
    return Principal(key_id="system", name="baton-backlog", kind=PrincipalKind.admin, project_ids=[project_id])


def _usable_backlog(item: Any) -> bool:
    return bool(item) and RunStatus(item["status"]) not in TERMINAL_RUN_STATUSES and not item.get("release_task_id")


class BugService:
    def __init__(self, repos: Repositories, projects: ProjectService, runs: RunService, tasks: TaskService):
        self.repos = repos
        self.projects = projects
        self.runs = runs
        self.tasks = tasks

    def report(self, principal: Principal, project_id: str, request: BugReport) -> Task:
        self.projects.get(principal, project_id, Action.report_bug)
        attachments = cited_proofs(self.repos.proofs, request.proof_ids, owner=f"project {project_id}", when="first",
                                   belongs=lambda proof: proof.project_id == project_id)
        description = (f"{request.description}\n\n" if request.description else "") + \
            f"Severity: {request.severity.value}\nReported by {principal.actor}."
        for _attempt in range(BACKLOG_ATTEMPTS):
            run_item = self._run_for(principal, project_id, request)
            try:
                task, _ = self.tasks.create(run_item, title=request.title, description=description[:10_000],
                                                priority=SEVERITY_PRIORITY[request.severity],
                                                source=TaskSource.bug_report, parent_task_id=None,
                                                actor=principal.actor,
                                                operations_for=lambda t: self._attach_ops(t, attachments),
                                                event_data={"attached_proofs": [p.id for p in attachments]}
                                                if attachments else None)
                break
            except ConflictError as error:
                if request.run_id is not None or error.code != "run_ended":
                    raise
                # the backlog run ended between the read and the write: take (or start) the next one
        else:
            raise ConflictError("the project's backlog run kept changing; report the bug again", code="busy")
        return task

    # ---- where the bug goes

    def _run_for(self, principal: Principal, project_id: str, request: BugReport) -> dict[str, Any]:
        if request.run_id is not None:
            # A body field naming something that is not there is a rule violation (422); 404 is
            # for the path. Another project's run reads exactly like a missing one.
            missing = RuleViolationError(f"run_id is not a run of project {project_id}; omit it to "
                                         "report into the project's backlog", code="unknown_run",
                                         details=[{"loc": ["run_id"]}])
            if not is_valid_id(request.run_id, ids.RUN):
                raise missing
            try:
                item = self.runs.run_item(principal, request.run_id, Action.report_bug)
            except NotFoundError:
                raise missing from None
            if item["project_id"] != project_id:
                raise missing
            require_open_run(item)
            if item.get("release_task_id"):
                raise ConflictError(f"run {request.run_id} passed its deploy gate; report the bug without run_id "
                                    "(it goes to the project's backlog) or in a newer run", code="run_released")
            return item
        return self._backlog_run(project_id)

    def _backlog_run(self, project_id: str) -> dict[str, Any]:
        for _attempt in range(BACKLOG_ATTEMPTS):
            current = self.repos.projects.backlog_run_id(project_id)
            if current:
                item = self.repos.runs.get_item(current)
                if _usable_backlog(item):
                    return item  # type: ignore[return-value]
            system = backlog_principal(project_id)
            run = self.runs.start(system, project_id, RunCreate(title=f"Backlog of {project_id}: bug reports"))
            if self.repos.projects.set_backlog_run(project_id, run.id, current, clock.now_iso()):
                return self.repos.runs.get_item(run.id) or {}
            self.runs.kill(system, run.id)  # another report started the backlog first: use theirs
        raise ConflictError("the project's backlog run kept changing; report the bug again", code="busy")

    # ---- attached proofs

    def _attach_ops(self, task: Task, proofs: list[Proof]) -> list[dict[str, Any]]:
        """The screenshots (or other proofs) attached to the bug task, written in the task's own
        transaction: new proof items of the task sharing the original S3 objects."""
        now = clock.now_iso()
        copies = [proof.model_copy(update={"id": new_id(ids.PROOF), "task_id": task.id, "run_id": task.run_id,
                                           "stage": task.stage.value, "iteration": task.iteration, "created_at": now,
                                           "attached_from": proof.id})
                  for proof in proofs]
        return [op for copy in copies for op in self.repos.proofs.create_ops(copy)]
