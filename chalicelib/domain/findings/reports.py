"""Findings reports as the API takes and answers them: the format, the request, the verdict."""

from enum import Enum
from typing import Any, Optional

from pydantic import Field, model_validator

from ..base import DomainModel
from ..entities import Task
from ..fields import STRICT_INPUT
from ..severity import Severity


class ReportFormat(str, Enum):
    security_report = "security_report"   # {findings: [...]}, or a scanner's SARIF / bandit JSON
    bugs = "bugs"                         # {bugs: [...]}
    generic = "generic"                   # any of the formats below, recognised by its shape
    sarif = "sarif"                       # SARIF 2.1.0 (semgrep, CodeQL, trivy, GitHub code scanning, bandit)
    bandit = "bandit"                     # bandit -f json


class FindingsReport(DomainModel):
    """The body of ``POST /tasks/{task_id}/findings``: the tool's JSON inline (``report``, an object,
    or the JSON text as a string), or a stored proof holding it (``proof_id``) for reports larger
    than a request body may be."""

    model_config = STRICT_INPUT
    format: ReportFormat = ReportFormat.generic
    report: Optional[Any] = None
    proof_id: Optional[str] = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _one_source(self) -> "FindingsReport":
        if (self.report is None) == (self.proof_id is None):
            raise ValueError("give exactly one of report (the tool's JSON) or proof_id (a stored proof holding it)")
        return self


class FindingsResult(DomainModel):
    verdict: str = Field(description="fail when any finding is critical or high")
    counts: dict[str, int] = Field(description="findings per severity")
    created_tasks: list[Task] = Field(description="the fix tasks created, most severe first")
    format: str = Field(description="the shape recognised: sarif, bandit, security_report or bugs")
    threshold: Severity
    findings: int
    below_threshold: int
    already_reported: int = Field(description="findings that already have a fix task in this run")
    over_ceiling: int = Field(description="fix tasks not created because of the run's max_fix_tasks")
