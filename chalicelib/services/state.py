"""Task state (contract v1.1 "Task state"): a task's versioned key-value store, for agents that
resume (their session folders) and checkpointers (LangGraph's). It survives re-dispatch and
loop-back: it belongs to the task, not to a job.

An agent reads and writes it only under its live claim of the task (a job token's, or the
``Baton-Claim`` its key names); humans and admins always may. Values up to 200 KB go in the
request; larger ones (up to 100 MB) through a presigned upload to S3 and a confirmation that
checks the bytes' size and SHA-256. No audit event per write: state is the agent's working memory,
written often; its history is the versions.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from ..adapters.dynamodb import Page, Repositories, TransactionCancelledError
from ..adapters.dynamodb.state import NAMES_COUNTER, VERSIONS_COUNTER
from ..domain import clock
from ..domain.auth import Principal
from ..domain.entities import Task
from ..domain.errors import ConflictError, InvalidInputError, NotFoundError, RuleViolationError
from ..domain.state import (INLINE_LIMIT, MAX_NAMES_PER_TASK, MAX_VERSIONS_PER_TASK, StateMeta, StatePut,
                            StateUploadAnswer, StateUploadRequest, StateValue, check_name, digest, encoded)
from .tasks import TaskService

UPLOAD_SECONDS = 900
READ_URL_SECONDS = 300


def meta_of(item: dict[str, Any]) -> StateMeta:
    return StateMeta(**{k: v for k, v in item.items() if k in StateMeta.model_fields})


class StateService:
    def __init__(self, repos: Repositories, tasks: TaskService, objects: Any):
        self.repos = repos
        self.tasks = tasks
        self.objects = objects

    # ---- reads

    def get(self, principal: Principal, task_id: str, name: str) -> StateValue:
        task = self.tasks.get_under_claim(principal, task_id)
        item = self.repos.state.get(task.id, check_name(name))
        if item is None or item.get("deleted"):
            raise NotFoundError(f"task {task.id} has no state named {name!r}")
        view = StateValue(**meta_of(item).model_dump())
        if item.get("stored") == "s3":
            view.download_url = self.objects.presigned_get(item["s3_key"], expires_in=READ_URL_SECONDS,
                                                           filename=name.replace("/", "_"),
                                                           content_type=item.get("content_type", "application/json"))
        else:
            view.value = json.loads(item["value_json"])
        return view

    def list(self, principal: Principal, task_id: str, prefix: str, limit: int, cursor: Optional[str]) -> Page:
        task = self.tasks.get_under_claim(principal, task_id)
        if prefix:
            check_name(prefix.rstrip("/") or "x")
        page = self.repos.state.list(task.id, prefix, limit, cursor)
        return Page([meta_of(i) for i in page.items], page.next_cursor)

    # ---- writes

    def put(self, principal: Principal, task_id: str, name: str, request: StatePut) -> StateMeta:
        task = self.tasks.get_under_claim(principal, task_id)
        check_name(name)
        try:
            text = encoded(request.value)
        except ValueError:
            raise InvalidInputError("the value must be JSON (no NaN or Infinity)", code="invalid_value") from None
        size = len(text.encode())
        if size > INLINE_LIMIT:
            raise InvalidInputError(f"the value is {size} bytes of JSON, more than {INLINE_LIMIT // 1024} KB: upload it "
                                    f"with POST /tasks/{task.id}/state/{{name}}/upload", code="value_too_large")
        return self._write(principal, task, name, request.expected_version,
                           {"size": size, "sha256": digest(text), "content_type": "application/json",
                            "stored": "inline", "value_json": text})

    def delete(self, principal: Principal, task_id: str, name: str, expected_version: Optional[int]) -> StateMeta:
        """A tombstone version: the name reads as absent, its history stays, its numbering goes on."""
        task = self.tasks.get_under_claim(principal, task_id)
        current = self.repos.state.get(task.id, check_name(name))
        if current is None or current.get("deleted"):
            raise NotFoundError(f"task {task.id} has no state named {name!r}")
        return self._write(principal, task, name, expected_version,
                           {"size": 0, "sha256": digest(""), "content_type": "application/json", "stored": "inline",
                            "value_json": "null", "deleted": True}, current=current)

    def upload(self, principal: Principal, task_id: str, name: str, request: StateUploadRequest) -> StateUploadAnswer:
        task = self.tasks.get_under_claim(principal, task_id)
        current = self.repos.state.get(task.id, check_name(name))
        version = self._next_version(task, name, current, request.expected_version)
        key = (f"projects/{task.project_id}/runs/{task.run_id}/tasks/{task.id}/state/{name}/"
               f"v{version:06d}-{request.sha256[:12]}")
        expires_at = clock.plus_seconds(clock.now_iso(), UPLOAD_SECONDS)
        form = self.objects.presigned_post(key, content_type=request.content_type, size=request.size,
                                           expires_in=UPLOAD_SECONDS)
        self.repos.state.put_upload(task.id, {"name": name, "version": version, "size": request.size,
                                              "sha256": request.sha256, "content_type": request.content_type,
                                              "s3_key": key, "expires_at": expires_at,
                                              "previous": current["version"] if current else None})
        return StateUploadAnswer(upload={"url": form["url"], "fields": form["fields"], "expires_at": expires_at},
                                 name=name, version=version)

    def confirm(self, principal: Principal, task_id: str, name: str) -> StateMeta:
        task = self.tasks.get_under_claim(principal, task_id)
        upload = self.repos.state.get_upload(task.id, check_name(name))
        if upload is None:
            raise NotFoundError(f"no upload of state {name!r} is pending on task {task.id}; ask for one first")
        if upload["expires_at"] < clock.now_iso():
            raise ConflictError("the upload's form expired; ask for a new one", code="upload_expired")
        stored = self.objects.head(upload["s3_key"])
        if stored is None:
            raise ConflictError("nothing was uploaded yet: post the file with the form, then confirm",
                                code="upload_missing")
        if stored.size != int(upload["size"]) or self.objects.sha256(upload["s3_key"]) != upload["sha256"]:
            self.objects.delete(upload["s3_key"])
            raise RuleViolationError("the uploaded bytes are not the size and sha256 announced; upload again",
                                     code="checksum_mismatch")
        current = self.repos.state.get(task.id, name)
        previous = current["version"] if current else None
        if previous != upload.get("previous"):
            raise ConflictError(f"state {name!r} changed since the upload was asked for (version {previous})",
                                code="version_conflict")
        return self._write(principal, task, name, None,
                           {"size": int(upload["size"]), "sha256": upload["sha256"],
                            "content_type": upload["content_type"], "stored": "s3", "s3_key": upload["s3_key"]},
                           current=current, extra=[self.repos.state.delete_upload_op(task.id, name, upload["version"])])

    # ---- one version

    def _next_version(self, task: Task, name: str, current: Optional[dict[str, Any]],
                      expected: Optional[int]) -> int:
        live = 0 if current is None or current.get("deleted") else int(current["version"])
        if expected is not None and expected != live:
            raise ConflictError(f"state {name!r} of task {task.id} is at version {live}, not {expected}; read it "
                                "again", code="version_conflict")
        return (int(current["version"]) if current else 0) + 1

    def _write(self, principal: Principal, task: Task, name: str, expected: Optional[int], body: dict[str, Any],
               current: Optional[dict[str, Any]] = None, extra: Optional[list[dict[str, Any]]] = None) -> StateMeta:
        if current is None:
            current = self.repos.state.get(task.id, name)
        version = self._next_version(task, name, current, expected)
        record = {"name": name, "version": version, "updated_at": clock.now_iso(), "updated_by": principal.actor,
                  "deleted": False, "task_id": task.id, "run_id": task.run_id, **body}
        previous = int(current["version"]) if current else None
        try:
            self.repos.table.transact([*self.repos.state.write_ops(task.id, record, previous), *(extra or [])])
        except TransactionCancelledError as cancelled:
            if cancelled.failed(2):
                for counter, cap, what in ((VERSIONS_COUNTER, MAX_VERSIONS_PER_TASK, "state versions"),
                                           (NAMES_COUNTER, MAX_NAMES_PER_TASK, "state names")):
                    if self.repos.tasks.count(task.id, counter) >= cap:
                        raise RuleViolationError(f"task {task.id} already has {cap} {what}, the most a task keeps",
                                                 code="task_cap_reached") from None
            raise ConflictError(f"state {name!r} of task {task.id} changed while it was written; read it again",
                                code="version_conflict") from None
        return meta_of(record)


__all__ = ["StateService"]
