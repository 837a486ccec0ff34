"""API keys: issue, list, revoke, and turn a bearer token into a Principal.

A key is ``bt_`` + 43 url-safe random characters. Only its sha256 is stored, so a database read
never reveals a usable key; revocation is read on every request and so takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Optional

from ..adapters.dynamodb import Page, Repositories
from ..domain import clock, ids
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import NotFoundError, UnauthenticatedError
from ..domain.ids import is_valid_id, new_id
from ..domain.entities import ApiKey
from ..domain.enums import PrincipalKind
from ..domain.requests import KeyCreate
from ..domain.pipeline import lease_is_live

KEY_PREFIX = ids.API_KEY_SECRET
LAUNCH_CODE_PREFIX = ids.LAUNCH_CODE_SECRET


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyService:
    def __init__(self, repos: Repositories):
        self.repos = repos

    def issue(self, request: KeyCreate, created_by: str) -> tuple[ApiKey, str]:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        api_key = ApiKey(id=new_id(ids.API_KEY), name=request.name, principal=request.principal,
                         project_ids=sorted(set(request.project_ids)), created_at=clock.now_iso(),
                         created_by=created_by)
        self.repos.credentials.create_api_key(hash_key(key), api_key)
        return api_key, key

    def create(self, principal: Principal, request: KeyCreate) -> tuple[ApiKey, str]:
        authorize(principal, Action.manage_keys)
        return self.issue(request, principal.actor)

    def issue_launch_code(self, task: Any, job_id: str, *, claim_id: str, expires_at: str, token_seconds: int) -> str:
        """A single-use code the launcher hands the runner of one container job. It is not a
        credential for anything but ``POST /jobs/{job_id}/token``, and only once: whoever sees it
        after the runner redeemed it (ECS overrides, a process list) holds nothing."""
        code = LAUNCH_CODE_PREFIX + secrets.token_urlsafe(32)
        self.repos.credentials.create_launch_code(hash_key(code), name=f"launch:{job_id}", project_id=task.project_id,
                                      task_id=task.id, job_id=job_id, stage=task.stage.value,
                                      dispatch=task.dispatch_seq, claim_id=claim_id, expires_at=expires_at,
                                      token_seconds=token_seconds)
        return code

    def redeem_launch_code(self, principal: Principal, job_id: str) -> dict[str, Any]:
        """Spend a launch code for its job's token: bound to the task, stage, dispatch and claim of the
        job, and dead as soon as the job ends (see ``authenticate``)."""
        authorize(principal, Action.redeem_launch_code)
        if principal.job_id != job_id:
            raise NotFoundError(f"job {job_id} not found")
        launch = self.repos.credentials.get(principal.key_id) or {}
        now = clock.now_iso()
        task = self.repos.tasks.get(str(launch.get("task_id")))
        if task is None or not job_is_live(task, launch, now):
            raise UnauthenticatedError("the job this launch code was made for has ended (advanced, re-dispatched, "
                                       "killed, or its launch window passed)", code="job_ended")
        token = KEY_PREFIX + secrets.token_urlsafe(32)
        expires_at = clock.plus_seconds(now, int(launch.get("token_seconds") or 3600))
        api_key = ApiKey(id=new_id(ids.API_KEY), name=f"job:{job_id}", principal=PrincipalKind.agent,
                         project_ids=[task.project_id], created_at=now, created_by="launch-code")
        self.repos.credentials.redeem_launch_code(principal.key_id, hash_key(token), api_key, launch=launch,
                                      expires_at=expires_at, now=now)
        return {"token": token, "expires_at": expires_at, "job_id": job_id, "task_id": task.id,
                "stage": task.stage.value, "claim_id": launch["claim_id"]}

    def bootstrap_admin(self, name: str = "bootstrap-admin") -> tuple[ApiKey, str]:
        """The first admin key, made by an operator command rather than through the API."""
        return self.issue(KeyCreate(name=name, principal=PrincipalKind.admin, project_ids=[]), "bootstrap")

    def list(self, principal: Principal, limit: int, cursor: Optional[str]) -> Page:
        authorize(principal, Action.manage_keys)
        return self.repos.credentials.list_api_keys(limit, cursor)

    def revoke(self, principal: Principal, key_id: str) -> ApiKey:
        authorize(principal, Action.manage_keys)
        item = self.repos.credentials.find_api_key(key_id) if is_valid_id(key_id, ids.API_KEY) else None
        if item is None:
            raise NotFoundError(f"api key {key_id} not found")
        revoked_at = item.get("revoked_at") or clock.now_iso()
        if not item.get("revoked_at"):
            self.repos.credentials.revoke(item["key_hash"], revoked_at)
        return ApiKey(**{**{k: v for k, v in item.items() if k in ApiKey.model_fields}, "revoked_at": revoked_at})

    def authenticate(self, authorization: Optional[str]) -> Principal:
        """The caller behind an ``Authorization: Bearer <key>`` header, or UnauthenticatedError.

        A job token lives exactly as long as its job: it is refused once the task moved on from
        the dispatch and claim it was issued for (advanced, re-dispatched, killed, lease expired).
        That costs one GetItem of the task, for job tokens only.
        """
        if not authorization:
            raise UnauthenticatedError("missing Authorization header; send 'Authorization: Bearer <api key>'",
                                       code="missing_credentials")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith((KEY_PREFIX, LAUNCH_CODE_PREFIX)) or len(token) > 200:
            raise UnauthenticatedError("the API key is not valid; check BATON_API_KEY", code="invalid_credentials")
        digest = hash_key(token)
        item = self.repos.credentials.get(digest)
        if item is None or not hmac.compare_digest(item.get("key_hash", ""), digest) or item.get("revoked_at"):
            raise UnauthenticatedError("the API key is not valid or was revoked; ask an admin for a new key",
                                       code="invalid_credentials")
        kind = item.get("type", "api_key")
        if token.startswith(LAUNCH_CODE_PREFIX) != (kind == "launch_code"):
            raise UnauthenticatedError("the API key is not valid", code="invalid_credentials")
        now = clock.now_iso()
        expires_at = item.get("expires_at")
        if kind in ("job_token", "launch_code") and (not expires_at or not item.get("task_id")
                                                      or not item.get("claim_id")):
            raise UnauthenticatedError("the job token is not valid; the dispatcher issues one per job",
                                       code="invalid_credentials")   # fail closed: never an unscoped agent
        if expires_at and expires_at <= now:
            raise UnauthenticatedError("the job token expired with its job", code="expired_credentials")
        if kind == "launch_code":
            if item.get("used_at"):
                raise UnauthenticatedError("the launch code was already used; a launch code buys one token, once",
                                           code="launch_code_used")
            return Principal(key_id=digest, name=item["name"], kind=PrincipalKind.agent,
                             project_ids=item.get("project_ids", []), task_id=item["task_id"],
                             job_id=item["job_id"], claim_id=item["claim_id"], launch_code=True)
        if kind == "job_token":
            task = self.repos.tasks.get(item["task_id"])
            if task is None or not job_is_live(task, item, now):
                raise UnauthenticatedError("the job this token was issued for has ended (advanced, re-dispatched, "
                                           "killed, or its lease expired); a job token dies with its job",
                                           code="job_ended")
        return Principal(key_id=item["id"], name=item["name"], kind=PrincipalKind(item["principal"]),
                         project_ids=item.get("project_ids", []), task_id=item.get("task_id"),
                         job_id=item.get("job_id"), claim_id=item.get("claim_id"))


def job_is_live(task: Any, binding: dict[str, Any], now: str) -> bool:
    """Whether the job a token (or launch code) is bound to is still the task's live job: same
    dispatch, same stage, and its claim holds an unexpired lease."""
    return (task.job_id == binding.get("job_id") and task.stage.value == binding.get("stage")
            and task.claim_id == binding.get("claim_id") and lease_is_live(task, now))
