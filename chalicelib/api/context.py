"""GET /tasks/{task_id}/context: the task, its run and project, the pinned role, handoffs, proofs, attempts."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.context import TaskContext
from .http import endpoint, principal

bp = Blueprint(__name__)


@endpoint(bp, "/tasks/{task_id}/context", response=TaskContext,
          summary="Everything the next agent needs about a task (at most 3 DynamoDB round trips)")
def task_context(task_id):
    return 200, get_services().context.get(principal(), task_id)
