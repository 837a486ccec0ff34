"""Task state in the task's partition: ``STATE#{name}`` (the current version, with an inline value
or the S3 key of a large one; a tombstone once deleted), ``STATEV#{name}#{version}`` (every version,
kept while the task exists), ``STATEUP#{name}`` (a large value's pending upload). Writes are
conditioned on the version read, and counted against the per-task caps in ``COUNTS``."""

from __future__ import annotations

from typing import Any, Optional

from ...domain.state import MAX_NAMES_PER_TASK, MAX_VERSIONS_PER_TASK
from . import keyspace
from .codec import attribute_value, serialize
from .table import Page, Table
from .tasks import TaskRepository

NAMES_COUNTER = "n_state_names"
VERSIONS_COUNTER = "n_state_versions"


class StateRepository:
    def __init__(self, table: Table, tasks: TaskRepository):
        self.table = table
        self.tasks = tasks

    def get(self, task_id: str, name: str) -> Optional[dict[str, Any]]:
        return self.table.get(keyspace.task_state(task_id, name))

    def list(self, task_id: str, prefix: str, limit: int, cursor: Optional[str]) -> Page:
        items, next_cursor = self.table.query_page(
            index=None, partition_name="pk", partition=keyspace.task_partition(task_id), limit=limit, cursor=cursor,
            sort_condition=("sk", "begins_with", keyspace.STATE_SK_PREFIX + prefix), filters={"deleted": False})
        return Page(items, next_cursor)

    def write_ops(self, task_id: str, record: dict[str, Any], previous: Optional[int]) -> list[dict[str, Any]]:
        """The new version as current (conditioned on ``previous``, the version read; None: none
        existed), its copy in the history, and the caps."""
        name, version = record["name"], record["version"]
        current = {**keyspace.task_state(task_id, name), "type": "state", **record}
        history = {**keyspace.task_state_version(task_id, name, version), "type": "state_version", **record}
        if previous is None:
            condition, values = "attribute_not_exists(pk)", None
        else:
            condition, values = "version = :previous", {":previous": previous}
        return [self.table.put_op(current, condition, values),
                self.table.put_op(history, "attribute_not_exists(pk)"),
                self.caps_op(task_id, new_name=previous is None)]

    def caps_op(self, task_id: str, *, new_name: bool) -> dict[str, Any]:
        """One more version (and name) in ``COUNTS``, only while below the per-task caps."""
        names = {"#v": VERSIONS_COUNTER}
        values = {":one": 1, ":vcap": MAX_VERSIONS_PER_TASK}
        expression, condition = "ADD #v :one", "(attribute_not_exists(#v) OR #v < :vcap)"
        if new_name:
            names["#n"] = NAMES_COUNTER
            values[":ncap"] = MAX_NAMES_PER_TASK
            expression += ", #n :one"
            condition += " AND (attribute_not_exists(#n) OR #n < :ncap)"
        return self.table.update_op(keyspace.task_counts(task_id), expression, condition=condition, names=names,
                                    values=values)

    def put_upload(self, task_id: str, upload: dict[str, Any]) -> None:
        """Record (or replace) the name's pending upload."""
        self.table.write(self.table.put_op(
            {**keyspace.task_state_upload(task_id, upload["name"]), "type": "state_upload", **upload}))

    def get_upload(self, task_id: str, name: str) -> Optional[dict[str, Any]]:
        return self.table.get(keyspace.task_state_upload(task_id, name))

    def delete_upload_op(self, task_id: str, name: str, version: int) -> dict[str, Any]:
        return {"Delete": {"TableName": self.table.name, "Key": serialize(keyspace.task_state_upload(task_id, name)),
                           "ConditionExpression": "version = :v",
                           "ExpressionAttributeValues": {":v": attribute_value(version)}}}


__all__ = ["NAMES_COUNTER", "StateRepository", "VERSIONS_COUNTER"]
