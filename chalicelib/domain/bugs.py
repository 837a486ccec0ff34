"""Bug reports: a person's (or an agent's) report of a problem, which becomes a bug task."""

from typing import Optional

from pydantic import Field, field_validator

from .base import DomainModel
from .fields import STRICT_INPUT, LongText, Title
from .handoffs import check_proof_ids
from .severity import Severity


class BugReport(DomainModel):
    """The body of ``POST /projects/{project_id}/bugs``."""

    model_config = STRICT_INPUT
    title: Title
    description: LongText = ""
    severity: Severity = Severity.medium
    run_id: Optional[str] = Field(default=None, max_length=64)
    proof_ids: list[str] = Field(default_factory=list, max_length=20)

    _proof_ids = field_validator("proof_ids")(lambda cls, v: check_proof_ids(v))
