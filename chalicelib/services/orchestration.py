"""The seam between the use cases and whatever sequences stages.

``Orchestrator`` is told when tasks enter the pipeline and when runs end. The base class is the
plain mode (no Step Functions): tasks are claimable as soon as they exist. The Step Functions
orchestrator (``adapters.stepfunctions``) starts one execution per task instead, and its
dispatcher puts the task in the claim queue when the stage job is dispatched.
"""

from __future__ import annotations

from typing import Iterable

from ..domain.models import Run, Task


class Orchestrator:
    """Plain mode: nothing to start; a new task is queued at once."""

    enqueue_on_entry = True

    def tasks_entered(self, run: Run, tasks: Iterable[Task]) -> None:
        """Tasks were written and are ready to be worked."""

    def run_started(self, run: Run) -> None:
        """A run's tasks are all written."""

    def run_killed(self, run: Run) -> None:
        """A run was killed: stop whatever still works on it."""
