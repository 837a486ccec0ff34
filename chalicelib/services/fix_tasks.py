"""Fix tasks: what QA and security report becomes work (parsing the report is ``domain.findings``).

Each finding at or above the run's threshold (default medium) becomes one fix task in the same
run (``source="finding"``, ``parent_task_id`` = the reporting task, priority critical/high 10,
medium 7, low 5), entering the pipeline like any task. In the same transaction as the task:

* a finding record ``RUN#{run}``/``FINDING#{dedup_key}`` written only if absent, so the same
  finding (rule, file, line, fingerprint) reported again creates no second task;
* the run's fix-task counter, incremented only while below ``ceilings.max_fix_tasks``; findings
  past the ceiling are not created but listed in a ``findings.ceiling_reached`` event.

The verdict is ``fail`` when any finding is critical or high.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from ..adapters.dynamodb import Repositories
from ..domain import clock
from ..domain.auth import Action, Principal
from ..domain.errors import ConflictError, PayloadTooLargeError, RuleViolationError
from ..domain.findings.reports import FindingsReport, FindingsResult
from ..domain.proofs import ProofStatus
from ..domain.severity import DEFAULT_FINDING_THRESHOLD, SEVERITY_PRIORITY, SEVERITY_RANK, Severity, counts_by_severity
from ..domain.findings.finding import Finding, fix_task_description, fix_task_title, verdict
from ..domain.findings.reading import parse_report
from ..domain.entities import Task
from ..domain.enums import AdvanceResult, TaskSource
from .proofs import ProofService
from .runs import RunService
from .tasks import require_open_run
from .tasks import TaskService

logger = logging.getLogger("baton.findings")

MAX_REPORT_BYTES = 10 * 1024 * 1024
MAX_LISTED_IN_EVENT = 50
CREATE_ATTEMPTS = 3
DEFAULT_MAX_FIX_TASKS = 50


def finding_threshold(run_item: dict[str, Any], project_settings: dict[str, Any]) -> Severity:
    """The run's threshold, else the project's ``settings.finding_threshold``, else medium."""
    for value in (run_item.get("finding_threshold"), project_settings.get("finding_threshold")):
        try:
            return Severity(str(value).lower())
        except ValueError:
            continue
    return DEFAULT_FINDING_THRESHOLD


def fix_task_ceiling(run_item: dict[str, Any]) -> int:
    """The run's ``ceilings.max_fix_tasks``, 50 when it sets none."""
    value = (run_item.get("ceilings") or {}).get("max_fix_tasks")
    return DEFAULT_MAX_FIX_TASKS if value is None else int(value)


def finding_record(finding: Finding, *, parent_task_id: str, reported_by: str, now: str) -> dict[str, Any]:
    return {"dedup_key": finding.dedup_key, "rule_id": finding.rule_id, "title": finding.title,
            "severity": finding.severity.value, "file": finding.file, "line": finding.line, "tool": finding.tool,
            "fingerprint": finding.fingerprint, "parent_task_id": parent_task_id, "reported_by": reported_by,
            "reported_at": now}


def _brief(finding: Finding) -> dict[str, Any]:
    return {"title": finding.title[:200], "severity": finding.severity.value, "rule_id": finding.rule_id,
            "file": finding.file, "line": finding.line, "dedup_key": finding.dedup_key}


class FixTaskService:
    def __init__(self, repos: Repositories, tasks: TaskService, runs: RunService,
                 proofs: ProofService):
        self.repos = repos
        self.tasks = tasks
        self.runs = runs
        self.proofs = proofs

    def report(self, principal: Principal, task_id: str, request: FindingsReport) -> FindingsResult:
        task = self.tasks.get_under_claim(principal, task_id)
        raw = request.report if request.proof_id is None else self._report_from_proof(principal, task, request.proof_id)
        parsed = parse_report(request.format, raw)
        run_item = self.repos.runs.get_item(task.run_id) or {}
        project = self.repos.projects.get(task.project_id)
        threshold = finding_threshold(run_item, project.settings if project else {})

        distinct: dict[str, Finding] = {}
        for finding in parsed.findings:
            if finding.at_or_above(threshold):
                distinct.setdefault(finding.dedup_key, finding)
        # Most severe first, so a ceiling keeps the findings that matter most.
        wanted = sorted(distinct.values(), key=lambda f: -SEVERITY_RANK[f.severity])
        below = len(parsed.findings) - sum(1 for f in parsed.findings if f.at_or_above(threshold))

        created: list[Task] = []
        already = 0
        over: list[Finding] = []
        if wanted:
            known = self.repos.findings.records(task.run_id, distinct)
            fresh = [f for f in wanted if f.dedup_key not in known]
            already = len(wanted) - len(fresh)
            if fresh:
                require_open_run(run_item)
                if run_item.get("release_task_id"):
                    raise ConflictError(f"run {task.run_id} passed its deploy gate and takes no fix tasks; report "
                                        "these findings in a new run", code="run_released")
                created, duplicates, over = self._create_fix_tasks(principal, task, run_item, fresh)
                already += duplicates
        if over:
            self.repos.audit.commit(run_id=task.run_id, actor=principal.actor, action="findings.ceiling_reached",
                              entity=f"task:{task.id}",
                              data={"max_fix_tasks": fix_task_ceiling(run_item),
                                    "not_created_count": len(over),
                                    "not_created": [_brief(f) for f in over[:MAX_LISTED_IN_EVENT]]})
        counts = counts_by_severity([f.severity for f in parsed.findings])
        outcome = verdict(parsed.findings)
        # A failing report binds its stage and iteration: that stage can no longer be passed.
        # Its failing findings also go on the task: the director recognises the same failure by them.
        failing = sorted({f.fingerprint or f"{f.rule_id}@{f.file}" for f in parsed.findings
                          if f.severity in (Severity.critical, Severity.high)})[:50]
        failed = [self.repos.findings.failed_verdict_op(task.id, task.stage.value, task.iteration, verdict=outcome,
                                                        reported_by=principal.actor, at=clock.now_iso()),
                  self.repos.tasks.failing_findings_op(task.id, stage=task.stage.value, iteration=task.iteration,
                                                       keys=failing, now=clock.now_iso())
                  ] if outcome == "fail" else []
        self.repos.audit.commit(run_id=task.run_id, actor=principal.actor, action="findings.reported",
                          entity=f"task:{task.id}", operations=failed,
                          data={"format": parsed.format, "verdict": outcome, "counts": counts,
                                "threshold": threshold.value, "created_task_ids": [t.id for t in created][:100],
                                "already_reported": already, "below_threshold": below, "over_ceiling": len(over)})
        return FindingsResult(verdict=outcome, counts=counts, created_tasks=created, format=parsed.format,
                              threshold=threshold, findings=len(parsed.findings), below_threshold=below,
                              already_reported=already, over_ceiling=len(over))

    def advance_check(self, result: AdvanceResult) -> Callable[[Task, dict[str, Any]], None]:
        """The ``check`` hook of ``TaskService.advance``: no pass over a failing findings verdict of the
        same stage and iteration (422 ``verdict_is_fail``)."""

        def check(task: Task, run_item: dict[str, Any]) -> None:
            if result != AdvanceResult.pass_:
                return
            if self.repos.findings.has_failed_verdict(task.id, task.stage.value, task.iteration):
                raise RuleViolationError(
                    f"a findings report failed stage {task.stage.value} (iteration {task.iteration}) of task {task.id}: "
                    "it cannot pass in this iteration; advance with result fail so the findings are fixed",
                    code="verdict_is_fail")

        return check

    # ---- fix tasks

    def _create_fix_tasks(self, principal: Principal, parent: Task, run_item: dict[str, Any],
                          findings: list[Finding]) -> tuple[list[Task], int, list[Finding]]:
        ceiling = fix_task_ceiling(run_item)
        count = self.repos.findings.fix_count(parent.run_id)
        created: list[Task] = []
        duplicates = 0
        over: list[Finding] = []
        item = run_item
        for finding in findings:
            if ceiling is not None and count >= ceiling:
                over.append(finding)
                continue
            outcome, item = self._create_one(principal, parent, item, finding, ceiling)
            if isinstance(outcome, Task):
                created.append(outcome)
                count += 1
            elif outcome == "duplicate":
                duplicates += 1
            else:
                over.append(finding)
                count = ceiling if ceiling is not None else count
        return created, duplicates, over

    def _create_one(self, principal: Principal, parent: Task, item: dict[str, Any], finding: Finding,
                    ceiling: Optional[int]) -> tuple[Any, dict[str, Any]]:
        """One fix task with its finding record and counter: the Task, or "duplicate" / "ceiling"."""
        now = clock.now_iso()
        record = finding_record(finding, parent_task_id=parent.id, reported_by=principal.actor, now=now)

        def operations(task: Task) -> tuple[dict[str, Any], ...]:
            # The record names its fix task in the same transaction that creates the task.
            return (self.repos.findings.record_op(parent.run_id, {**record, "fix_task_id": task.id}),
                    self.repos.findings.fix_count_op(parent.run_id, ceiling))
        for _attempt in range(CREATE_ATTEMPTS):
            try:
                task, committed = self.tasks.create(
                    item, title=fix_task_title(finding),
                    description=fix_task_description(finding, parent_task_id=parent.id, reported_by=principal.actor),
                    priority=SEVERITY_PRIORITY[finding.severity], source=TaskSource.finding,
                    parent_task_id=parent.id, actor=principal.actor, operations_for=operations,
                    parent_is_canary=parent.canary, inputs=dict(parent.outputs))
            except RuleViolationError as error:
                if error.code == "ceiling_exceeded":
                    return "ceiling", item   # the run's max_tasks: the rest is listed, never half-created
                raise
            except ConflictError as error:
                if error.code != "stale_version":
                    raise
                # A condition failed: tell which (reported meanwhile, or the ceiling was reached).
                if self.repos.findings.records(parent.run_id, [finding.dedup_key]):
                    return "duplicate", item
                if ceiling is not None and self.repos.findings.fix_count(parent.run_id) >= ceiling:
                    return "ceiling", item
                item = self.repos.runs.get_item(parent.run_id) or item
                continue
            # The run as it is now, as far as this writer knows: the next commit's event sequence.
            return task, {**committed.run_item, "event_seq": committed.event["seq"]}
        raise ConflictError("the run kept changing while fix tasks were created; report the findings again (those "
                            "already created are kept)", code="busy")

    # ---- a report too large for a request body, stored as a proof

    def _report_from_proof(self, principal: Principal, task: Task, proof_id: str) -> bytes:
        proof = self.proofs.get(principal, proof_id, Action.work)
        if proof.project_id != task.project_id:
            raise RuleViolationError(f"proof {proof_id} belongs to another project; use a proof of project "
                                     f"{task.project_id}", code="foreign_proof")
        if proof.status != ProofStatus.stored:
            raise ConflictError(f"proof {proof_id} is {proof.status.value}: upload and confirm it first",
                                code="proof_not_stored")
        if proof.size > MAX_REPORT_BYTES:
            raise PayloadTooLargeError(f"a report may be at most {MAX_REPORT_BYTES} bytes; proof {proof_id} has "
                                       f"{proof.size}: split the report", code="report_too_large")
        return self.proofs.objects.read(proof.s3_key, MAX_REPORT_BYTES, proof.s3_version_id)
