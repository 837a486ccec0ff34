"""DynamoDB reads and writes of evidence: handoffs, proofs, finding records, the backlog pointer.

Uses the BatonStore it is given (its client, table, ``put_op``, ``_query_page`` and item
serialization); multi-item changes are returned as operations for ``BatonStore.commit`` so they
land in one transaction with the run's audit event. See docs/data-model.md.

* Handoffs and proofs live in their task's partition (``TASK#{task}``), sorted by creation time,
  so the task's context is one Query. Lookup by id goes through a small pointer item
  (``HANDOFF#{id}`` / ``PROOF#{id}``, ``META``) that names the task and the item's sort key.
* A project's proof history is gsi1 (``PROJECT#{project}#PROOFS``, ``{created_at}#{id}``).
* Finding records (``RUN#{run}``, ``FINDING#{dedup_key}``) make a finding reported twice create
  no second fix task; ``RUN#{run}``/``FIXCOUNT`` counts fix tasks against ``max_fix_tasks``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Optional

from ..domain.errors import ConflictError, InvalidInputError, RuleViolationError
from ..domain.evidence import Handoff, Proof, ProofStatus
from . import keys
from .dynamo import GSI1_NAMES, KEY_NAMES, BatonStore, Page, deserialize, serialize
from .pagination import decode_cursor, encode_cursor

BATCH_GET_LIMIT = 100
MAX_HANDOFFS_PER_TASK = 200    # per-task caps: a task's history stays a bounded amount of work
MAX_PROOFS_PER_TASK = 500
WHOLE_PARTITION = 100_000   # a Query's Limit: in practice DynamoDB's 1 MB per page is what splits it


# --------------------------------------------------------------------------- item mapping

def handoff_to_item(handoff: Handoff) -> dict[str, Any]:
    return {**keys.handoff(handoff.task_id, handoff.created_at, handoff.id), "type": "handoff",
            **handoff.model_dump(mode="json")}


def item_to_handoff(item: dict[str, Any]) -> Handoff:
    return Handoff(**{k: v for k, v in item.items() if k in Handoff.model_fields})


def proof_to_item(proof: Proof) -> dict[str, Any]:
    # ``type`` names the entity on every item, so the proof's type is stored as ``proof_type``.
    body = proof.model_dump(mode="json")
    body["proof_type"] = body.pop("type")
    return {**keys.proof(proof.task_id, proof.created_at, proof.id),
            **keys.proof_list_entry(proof.project_id, proof.created_at, proof.id), "type": "proof", **body}


def item_to_proof(item: dict[str, Any]) -> Proof:
    fields = {k: v for k, v in item.items() if k in Proof.model_fields and k != "type"}
    return Proof(**fields, type=item["proof_type"])


def _ref_item(key: dict[str, str], kind: str, task_id: str, item_sk: str) -> dict[str, Any]:
    return {**key, "type": kind, "task_id": task_id, "item_sk": item_sk}


@contextmanager
def task_cap(evidence: "EvidenceStore", task_id: str, counter: str, cap: int, what: str) -> Iterator[None]:
    """Turn a write refused by a per-task cap (``count_op``) into a 422 that says so."""
    try:
        yield
    except ConflictError:
        if evidence.task_count(task_id, counter) >= cap:
            raise RuleViolationError(f"task {task_id} already has {cap} {what}, the most a task keeps; "
                                     "summarise in fewer, or start a new task", code="task_cap_reached") from None
        raise


class EvidenceStore:
    def __init__(self, store: BatonStore):
        self.store = store

    # ---- helpers

    def batch_get(self, item_keys: list[dict[str, str]]) -> list[dict[str, Any]]:
        """One BatchGetItem (more only past 100 keys, or when DynamoDB leaves some unprocessed)."""
        found: list[dict[str, Any]] = []
        table = self.store.table
        for start in range(0, len(item_keys), BATCH_GET_LIMIT):
            request: Optional[dict[str, Any]] = {table: {
                "Keys": [serialize(k) for k in item_keys[start:start + BATCH_GET_LIMIT]], "ConsistentRead": True}}
            while request:
                response = self.store.client.batch_get_item(RequestItems=request)
                found.extend(deserialize(i) for i in response["Responses"].get(table, []))
                request = response.get("UnprocessedKeys") or None
        return found

    def _task_list_cursor(self, task_id: str, cursor: Optional[str], inside: Callable[[str], bool]) -> None:
        """A cursor of another list of the same partition would start outside this list's key range
        (DynamoDB answers that with a ValidationException): refuse it as a bad cursor."""
        start = decode_cursor(cursor, expected={"pk": keys.task_partition(task_id)}, names=KEY_NAMES)
        if start and not inside(start["sk"]):
            raise InvalidInputError("cursor is not valid for this list; pass the next_cursor of the previous page",
                                    code="invalid_cursor")

    # ---- the task's partition

    def task_partition(self, task_id: str) -> list[dict[str, Any]]:
        """Every item of the task (META, stage jobs, handoffs, proofs): one Query per 1 MB."""
        items: list[dict[str, Any]] = []
        cursor: Optional[str] = None
        while True:
            page, cursor = self.store._query_page(index=None, partition_name="pk",
                                                  partition=keys.task_partition(task_id), limit=WHOLE_PARTITION,
                                                  cursor=cursor)
            items.extend(page)
            if not cursor:
                return items

    def task_head(self, task_id: str, jobs: int) -> tuple[Optional[dict[str, Any]], list[dict[str, Any]]]:
        """The task item and its latest ``jobs`` stage jobs, newest first: one Query (``JOB#…`` sorts
        just below ``META``)."""
        response = self.store.client.query(
            TableName=self.store.table, ConsistentRead=True, ScanIndexForward=False, Limit=jobs + 1,
            KeyConditionExpression="pk = :p AND sk BETWEEN :from AND :to",
            ExpressionAttributeValues={":p": {"S": keys.task_partition(task_id)}, ":from": {"S": keys.JOB_PREFIX},
                                       ":to": {"S": keys.META}})
        items = [deserialize(i) for i in response.get("Items", [])]
        meta = next((i for i in items if i["sk"] == keys.META), None)
        return meta, [i for i in items if i["sk"].startswith(keys.JOB_PREFIX)][:jobs]

    def handoff_cursor(self, handoff: Handoff) -> Optional[str]:
        """The ``list_handoffs`` cursor that continues after ``handoff``."""
        return encode_cursor({"pk": keys.task_partition(handoff.task_id), "sk": handoff_to_item(handoff)["sk"]})

    # ---- handoffs

    def handoff_create_ops(self, handoff: Handoff) -> list[dict[str, Any]]:
        item = handoff_to_item(handoff)
        ref = _ref_item(keys.handoff_ref(handoff.id), "handoff_ref", handoff.task_id, item["sk"])
        return [self.store.put_op(item, "attribute_not_exists(pk)"), self.store.put_op(ref, "attribute_not_exists(pk)"),
                self.count_op(handoff.task_id, "n_handoffs", MAX_HANDOFFS_PER_TASK)]

    def count_op(self, task_id: str, counter: str, cap: int) -> dict[str, Any]:
        """Count one more handoff or proof of the task, only while below the per-task cap."""
        return {"Update": {
            "TableName": self.store.table, "Key": serialize(keys.task_counts(task_id)),
            "UpdateExpression": "ADD #n :one", "ConditionExpression": "attribute_not_exists(#n) OR #n < :cap",
            "ExpressionAttributeNames": {"#n": counter},
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":cap": {"N": str(cap)}}}}

    def task_count(self, task_id: str, counter: str) -> int:
        return int((self.store.get_item(keys.task_counts(task_id)) or {}).get(counter, 0) or 0)

    def handoff_update_op(self, handoff: Handoff, expected_version: int) -> dict[str, Any]:
        return self.store.put_op(handoff_to_item(handoff), "version = :v", {":v": expected_version})

    def get_handoff(self, handoff_id: str) -> Optional[Handoff]:
        ref = self.store._get(keys.handoff_ref(handoff_id))
        if ref is None:
            return None
        item = self.store._get({"pk": keys.task_partition(ref["task_id"]), "sk": ref["item_sk"]})
        return item_to_handoff(item) if item else None

    def list_handoffs(self, task_id: str, limit: int, cursor: Optional[str]) -> Page:
        """Newest first. Handoff keys sort below ``HANDOFF$``; the type filter keeps the list exact."""
        below = keys.HANDOFF_PREFIX[:-1] + "$"
        self._task_list_cursor(task_id, cursor, lambda sk: sk < below)
        items, next_cursor = self.store._query_page(
            index=None, partition_name="pk", partition=keys.task_partition(task_id), limit=limit, cursor=cursor,
            forward=False, sort_condition=("sk", "<", below),
            filters={"type": "handoff"})
        return Page([item_to_handoff(i) for i in items], next_cursor)

    # ---- proofs

    def proof_create_ops(self, proof: Proof) -> list[dict[str, Any]]:
        item = proof_to_item(proof)
        ref = _ref_item(keys.proof_ref(proof.id), "proof_ref", proof.task_id, item["sk"])
        return [self.store.put_op(item, "attribute_not_exists(pk)"), self.store.put_op(ref, "attribute_not_exists(pk)"),
                self.count_op(proof.task_id, "n_proofs", MAX_PROOFS_PER_TASK)]

    def proof_store_op(self, proof: Proof) -> dict[str, Any]:
        """Mark a pending proof stored; fails if it is no longer pending (a concurrent confirm)."""
        return self.store.put_op(proof_to_item(proof), "#st = :pending", {":pending": ProofStatus.pending.value},
                                 {"#st": "status"})

    def get_proof(self, proof_id: str) -> Optional[Proof]:
        ref = self.store._get(keys.proof_ref(proof_id))
        if ref is None:
            return None
        item = self.store._get({"pk": keys.task_partition(ref["task_id"]), "sk": ref["item_sk"]})
        return item_to_proof(item) if item else None

    def get_proofs(self, proof_ids: Iterable[str]) -> dict[str, Proof]:
        """Proofs by id (missing ones are absent): two BatchGetItems, pointers then items."""
        refs = self.batch_get([keys.proof_ref(p) for p in dict.fromkeys(proof_ids)])
        items = self.batch_get([{"pk": keys.task_partition(r["task_id"]), "sk": r["item_sk"]} for r in refs])
        proofs = [item_to_proof(i) for i in items]
        return {p.id: p for p in proofs}

    def list_task_proofs(self, task_id: str, limit: int, cursor: Optional[str],
                         proof_type: Optional[str] = None) -> Page:
        """Newest first. Proof keys sort above ``PROOF#``; the type filter keeps the list exact."""
        self._task_list_cursor(task_id, cursor, lambda sk: sk > keys.PROOF_PREFIX)
        filters: dict[str, Any] = {"type": "proof"}
        if proof_type:
            filters["proof_type"] = proof_type
        items, next_cursor = self.store._query_page(
            index=None, partition_name="pk", partition=keys.task_partition(task_id), limit=limit, cursor=cursor,
            forward=False, sort_condition=("sk", ">", keys.PROOF_PREFIX), filters=filters)
        return Page([item_to_proof(i) for i in items], next_cursor)

    def stored_proofs_of_stage(self, task_id: str, stage: str, iteration: int) -> list[Proof]:
        """The task's stored proofs of one stage and iteration (what the stage's requirements count)."""
        found: list[Proof] = []
        cursor: Optional[str] = None
        while True:
            items, cursor = self.store._query_page(
                index=None, partition_name="pk", partition=keys.task_partition(task_id), limit=200, cursor=cursor,
                forward=False, sort_condition=("sk", ">", keys.PROOF_PREFIX),
                filters={"type": "proof", "stage": stage, "iteration": iteration,
                         "status": ProofStatus.stored.value})
            found.extend(item_to_proof(i) for i in items)
            if not cursor:
                return found

    def list_project_proofs(self, project_id: str, limit: int, cursor: Optional[str],
                            proof_type: Optional[str] = None, run_id: Optional[str] = None) -> Page:
        filters = {k: v for k, v in (("proof_type", proof_type), ("run_id", run_id)) if v}
        items, next_cursor = self.store._query_page(
            index="gsi1", partition_name="gsi1pk", partition=keys.proofs_of_project(project_id), limit=limit,
            cursor=cursor, forward=False, filters=filters or None, names=GSI1_NAMES)
        return Page([item_to_proof(i) for i in items], next_cursor)

    # ---- findings: dedup records and the fix-task counter

    def finding_put_op(self, run_id: str, record: dict[str, Any]) -> dict[str, Any]:
        item = {**keys.finding(run_id, record["dedup_key"]), "type": "finding", **record}
        return self.store.put_op(item, "attribute_not_exists(pk)")

    def finding_records(self, run_id: str, dedup_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        items = self.batch_get([keys.finding(run_id, k) for k in dict.fromkeys(dedup_keys)])
        return {i["dedup_key"]: i for i in items}

    def fix_count_op(self, run_id: str, ceiling: Optional[int]) -> dict[str, Any]:
        """Count one more fix task; with a ceiling, only while the count is below it."""
        update: dict[str, Any] = {
            "TableName": self.store.table, "Key": serialize(keys.fix_task_count(run_id)),
            "UpdateExpression": "SET #t = :type ADD #n :one", "ExpressionAttributeNames": {"#n": "n", "#t": "type"},
            "ExpressionAttributeValues": serialize({":one": 1, ":type": "fix_count"})}
        if ceiling is not None:
            update["ConditionExpression"] = "attribute_not_exists(#n) OR #n < :max"
            update["ExpressionAttributeValues"].update(serialize({":max": ceiling}))
        return {"Update": update}

    def fix_count(self, run_id: str) -> int:
        item = self.store._get(keys.fix_task_count(run_id))
        return int(item.get("n", 0)) if item else 0

    # ---- the project's backlog run

    def backlog_run_id(self, project_id: str) -> Optional[str]:
        item = self.store._get(keys.backlog(project_id))
        return item["run_id"] if item else None

    def set_backlog_run(self, project_id: str, run_id: str, previous: Optional[str], now: str) -> bool:
        """Point the project's backlog at ``run_id`` unless someone moved it from ``previous`` first."""
        item = {**keys.backlog(project_id), "type": "backlog", "project_id": project_id, "run_id": run_id,
                "updated_at": now}
        if previous is None:
            op = self.store.put_op(item, "attribute_not_exists(pk)")
        else:
            op = self.store.put_op(item, "run_id = :previous", {":previous": previous})
        try:
            self.store.client.put_item(**op["Put"])
        except self.store.client.exceptions.ConditionalCheckFailedException:
            return False
        return True
