"""API keys: issue, list, revoke, and turn a bearer token into a Principal.

A key is ``bt_`` + 43 url-safe random characters. Only its sha256 is stored, so a database read
never reveals a usable key; revocation is read on every request and so takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Optional

from ..adapters.dynamo import BatonStore, Page
from ..domain import clock
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import NotFoundError, UnauthenticatedError
from ..domain.ids import is_valid_id, new_id
from ..domain.models import ApiKey, KeyCreate, PrincipalKind

KEY_PREFIX = "bt_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyService:
    def __init__(self, store: BatonStore):
        self.store = store

    def issue(self, request: KeyCreate, created_by: str) -> tuple[ApiKey, str]:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        api_key = ApiKey(id=new_id("key"), name=request.name, principal=request.principal,
                         project_ids=sorted(set(request.project_ids)), created_at=clock.now_iso(),
                         created_by=created_by)
        self.store.create_api_key(hash_key(key), api_key)
        return api_key, key

    def create(self, principal: Principal, request: KeyCreate) -> tuple[ApiKey, str]:
        authorize(principal, Action.manage_keys)
        return self.issue(request, principal.actor)

    def issue_job_token(self, task: Any, job_id: str, expires_at: str) -> tuple[ApiKey, str]:
        """A key for one dispatched job: an agent of the task's project, valid only for that task
        and only until the job's time limit. Not listed with the keys (it has no list entry)."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        api_key = ApiKey(id=new_id("key"), name=f"job:{job_id}", principal=PrincipalKind.agent,
                         project_ids=[task.project_id], created_at=clock.now_iso(), created_by="dispatcher")
        self.store.create_job_token(hash_key(key), api_key, task_id=task.id, job_id=job_id, expires_at=expires_at)
        return api_key, key

    def bootstrap_admin(self, name: str = "bootstrap-admin") -> tuple[ApiKey, str]:
        """The first admin key, made by an operator command rather than through the API."""
        return self.issue(KeyCreate(name=name, principal=PrincipalKind.admin, project_ids=[]), "bootstrap")

    def list(self, principal: Principal, limit: int, cursor: Optional[str]) -> Page:
        authorize(principal, Action.manage_keys)
        return self.store.list_api_keys(limit, cursor)

    def revoke(self, principal: Principal, key_id: str) -> ApiKey:
        authorize(principal, Action.manage_keys)
        item = self.store.find_api_key(key_id) if is_valid_id(key_id, "key") else None
        if item is None:
            raise NotFoundError(f"api key {key_id} not found")
        revoked_at = item.get("revoked_at") or clock.now_iso()
        if not item.get("revoked_at"):
            self.store.revoke_api_key(item["key_hash"], revoked_at)
        return ApiKey(**{**{k: v for k, v in item.items() if k in ApiKey.model_fields}, "revoked_at": revoked_at})

    def authenticate(self, authorization: Optional[str]) -> Principal:
        """The caller behind an ``Authorization: Bearer <key>`` header, or UnauthenticatedError."""
        if not authorization:
            raise UnauthenticatedError("missing Authorization header; send 'Authorization: Bearer <api key>'",
                                       code="missing_credentials")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX) or len(token) > 200:
            raise UnauthenticatedError("the API key is not valid; check BATON_API_KEY", code="invalid_credentials")
        digest = hash_key(token)
        item = self.store.get_api_key(digest)
        if item is None or not hmac.compare_digest(item.get("key_hash", ""), digest) or item.get("revoked_at"):
            raise UnauthenticatedError("the API key is not valid or was revoked; ask an admin for a new key",
                                       code="invalid_credentials")
        expires_at = item.get("expires_at")
        if item.get("type") == "job_token" and (not expires_at or not item.get("task_id")):
            raise UnauthenticatedError("the job token is not valid; the dispatcher issues one per job",
                                       code="invalid_credentials")   # fail closed: never an unscoped agent
        if expires_at and expires_at <= clock.now_iso():
            raise UnauthenticatedError("the job token expired with its job", code="expired_credentials")
        return Principal(key_id=item["id"], name=item["name"], kind=PrincipalKind(item["principal"]),
                         project_ids=item.get("project_ids", []), task_id=item.get("task_id"),
                         job_id=item.get("job_id"))
