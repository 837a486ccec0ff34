"""GET /whoami: who the caller's key is and what it may do (the dashboard shows only the controls
a key may use; the API refuses the others anyway)."""

from typing import Optional

from chalice import Blueprint

from ..domain.auth import Action, authorize
from ..domain.base import DomainModel
from ..domain.enums import PrincipalKind
from ..domain.errors import BatonError
from .http import endpoint, principal
from .query import query

bp = Blueprint(__name__)


class Caller(DomainModel):
    key_id: str
    name: str
    principal: PrincipalKind
    project_ids: list[str]
    all_projects: bool
    task_id: Optional[str] = None
    rights: list[Action]


@endpoint(bp, "/whoami", response=Caller, summary="The caller's key: its name, principal, projects and rights")
def whoami():
    query(bp, set())
    caller = principal()
    authorize(caller, Action.read_config)     # every credential but a launch code (403)
    rights = []
    for action in Action:
        try:
            authorize(caller, action)
        except BatonError:
            continue
        rights.append(action)
    return 200, Caller(key_id=caller.key_id, name=caller.name, principal=caller.kind, project_ids=caller.project_ids,
                       all_projects=caller.is_admin, task_id=caller.task_id, rights=rights)
