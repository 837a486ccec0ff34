"""Credentials: API keys, launch codes and job tokens, each stored under the sha256 of its secret
(``KEY#{sha256}``/``META``; the secret itself is never stored). API keys are listed on gsi1
``KEYS``; launch codes and job tokens are not listed, and expire by TTL a day after their end."""

from __future__ import annotations

from typing import Any, Optional

from ...domain import clock
from ...domain.errors import UnauthenticatedError
from ...domain.entities import ApiKey
from . import keyspace
from .table import GSI1_NAMES, Page, Table, TransactionCancelledError

TTL_GRACE_SECONDS = 86_400


def item_to_api_key(item: dict[str, Any]) -> ApiKey:
    return ApiKey(**{k: v for k, v in item.items() if k in ApiKey.model_fields})


def _expiry(expires_at: str) -> dict[str, Any]:
    return {"expires_at": expires_at,
            "expires_at_epoch": int(clock.parse_iso(expires_at).timestamp()) + TTL_GRACE_SECONDS}


class CredentialRepository:
    def __init__(self, table: Table):
        self.table = table

    def create_api_key(self, key_hash: str, api_key: ApiKey) -> None:
        item = {**keyspace.api_key(key_hash), **keyspace.api_key_list_entry(api_key.id), "type": "api_key",
                "key_hash": key_hash, **api_key.model_dump(mode="json")}
        self.table.transact([self.table.put_op(item, "attribute_not_exists(pk)")])

    def create_launch_code(self, code_hash: str, *, name: str, project_id: str, task_id: str, job_id: str,
                           stage: str, dispatch: int, claim_id: str, expires_at: str, token_seconds: int) -> None:
        """A single-use launch code of one container job."""
        item = {**keyspace.api_key(code_hash), "type": "launch_code", "key_hash": code_hash, "id": f"lc_{job_id}",
                "name": name, "principal": "agent", "project_ids": [project_id], "task_id": task_id,
                "job_id": job_id, "stage": stage, "dispatch": dispatch, "claim_id": claim_id,
                "token_seconds": token_seconds, "created_at": clock.now_iso(), **_expiry(expires_at)}
        self.table.transact([self.table.put_op(item, "attribute_not_exists(pk)")])

    def redeem_launch_code(self, code_hash: str, token_hash: str, api_key: ApiKey, *, launch: dict[str, Any],
                           expires_at: str, now: str) -> None:
        """Spend the launch code and write the job token it buys, atomically: of two redeemers exactly
        one gets a token (the other: 401 ``launch_code_used``)."""
        spend = self.table.update_op(
            keyspace.api_key(code_hash), "SET used_at = :now",
            condition="attribute_exists(pk) AND attribute_not_exists(used_at) AND expires_at > :now",
            values={":now": now})
        token = {**keyspace.api_key(token_hash), "type": "job_token", "key_hash": token_hash,
                 **api_key.model_dump(mode="json"),
                 **{k: launch[k] for k in ("task_id", "job_id", "stage", "dispatch", "claim_id")}, **_expiry(expires_at)}
        try:
            self.table.transact([spend, self.table.put_op(token, "attribute_not_exists(pk)")])
        except TransactionCancelledError:
            raise UnauthenticatedError("the launch code was already used or expired; a launch code buys one "
                                       "token, once", code="launch_code_used") from None

    def get(self, key_hash: str) -> Optional[dict[str, Any]]:
        return self.table.get(keyspace.api_key(key_hash))

    def list_api_keys(self, limit: int, cursor: Optional[str]) -> Page:
        items, next_cursor = self.table.query_page(index="gsi1", partition_name="gsi1pk",
                                                   partition=keyspace.KEYS_PARTITION, limit=limit, cursor=cursor,
                                                   forward=False, names=GSI1_NAMES)
        return Page([item_to_api_key(i) for i in items], next_cursor)

    def find_api_key(self, key_id: str) -> Optional[dict[str, Any]]:
        """An API key's item by its id (to revoke it): its gsi1 list entry, one Query."""
        items = self.table.query(partition=keyspace.KEYS_PARTITION, index="gsi1", partition_name="gsi1pk", limit=1,
                                 sort_key="gsi1sk", sort_equals=keyspace.api_key_list_entry(key_id)["gsi1sk"])
        return items[0] if items else None

    def revoke(self, key_hash: str, revoked_at: str) -> None:
        self.table.write(self.table.update_op(keyspace.api_key(key_hash), "SET revoked_at = :t",
                                              condition="attribute_exists(pk)", values={":t": revoked_at}))


__all__ = ["CredentialRepository", "item_to_api_key"]
