"""Proofs: in their task's partition, ``TASK#{task}``/``PROOF#{created_at}#{id}``, with a pointer
``PROOF#{id}``/``META`` for lookup by id and gsi1 ``PROJECT#{project}#PROOFS`` for a project's proof
history, newest first. A proof's type is stored as ``proof_type`` (``type`` names the entity on
every item). Declaring one also counts it against the task's cap."""

from __future__ import annotations

from typing import Any, Iterable, Optional

from ...domain.proofs import Proof, ProofStatus
from . import keyspace
from .handoffs import check_task_list_cursor, pointer_item
from .table import GSI1_NAMES, Page, Table
from .tasks import MAX_PROOFS_PER_TASK, TaskRepository


def proof_to_item(proof: Proof) -> dict[str, Any]:
    body = proof.model_dump(mode="json")
    body["proof_type"] = body.pop("type")
    return {**keyspace.proof(proof.task_id, proof.created_at, proof.id),
            **keyspace.proof_list_entry(proof.project_id, proof.created_at, proof.id), "type": "proof", **body}


def item_to_proof(item: dict[str, Any]) -> Proof:
    fields = {k: v for k, v in item.items() if k in Proof.model_fields and k != "type"}
    return Proof(**fields, type=item["proof_type"])


class ProofRepository:
    def __init__(self, table: Table, tasks: TaskRepository):
        self.table = table
        self.tasks = tasks

    def create_ops(self, proof: Proof) -> list[dict[str, Any]]:
        item = proof_to_item(proof)
        pointer = pointer_item(keyspace.proof_ref(proof.id), "proof_ref", proof.task_id, item["sk"])
        return [self.table.put_op(item, "attribute_not_exists(pk)"), self.table.put_op(pointer, "attribute_not_exists(pk)"),
                self.tasks.count_op(proof.task_id, "n_proofs", MAX_PROOFS_PER_TASK)]

    def within_cap(self, task_id: str):
        return self.tasks.within_cap(task_id, "n_proofs", MAX_PROOFS_PER_TASK, "proofs")

    def store_op(self, proof: Proof) -> dict[str, Any]:
        """Mark a pending proof stored; fails if it is no longer pending (a concurrent confirm)."""
        return self.table.put_op(proof_to_item(proof), "#st = :pending", {":pending": ProofStatus.pending.value},
                                 {"#st": "status"})

    def get(self, proof_id: str) -> Optional[Proof]:
        pointer = self.table.get(keyspace.proof_ref(proof_id))
        if pointer is None:
            return None
        item = self.table.get({"pk": keyspace.task_partition(pointer["task_id"]), "sk": pointer["item_sk"]})
        return item_to_proof(item) if item else None

    def get_many(self, proof_ids: Iterable[str]) -> dict[str, Proof]:
        """Proofs by id (missing ones are absent): two BatchGetItems, pointers then items."""
        pointers = self.table.batch_get([keyspace.proof_ref(p) for p in dict.fromkeys(proof_ids)])
        items = self.table.batch_get([{"pk": keyspace.task_partition(r["task_id"]), "sk": r["item_sk"]}
                                      for r in pointers])
        return {p.id: p for p in (item_to_proof(i) for i in items)}

    def of_task(self, task_id: str, limit: int, cursor: Optional[str], proof_type: Optional[str] = None) -> Page:
        """Newest first. Proof keys sort above ``PROOF#``; the type filter keeps the list exact."""
        check_task_list_cursor(task_id, cursor, lambda sk: sk > keyspace.PROOF_SK_PREFIX)
        filters: dict[str, Any] = {"type": "proof"}
        if proof_type:
            filters["proof_type"] = proof_type
        items, next_cursor = self.table.query_page(
            index=None, partition_name="pk", partition=keyspace.task_partition(task_id), limit=limit, cursor=cursor,
            forward=False, sort_condition=("sk", ">", keyspace.PROOF_SK_PREFIX), filters=filters)
        return Page([item_to_proof(i) for i in items], next_cursor)

    def stored_of_stage(self, task_id: str, stage: str, iteration: int) -> list[Proof]:
        """The task's stored proofs of one stage and iteration (what the stage's requirements count)."""
        found: list[Proof] = []
        cursor: Optional[str] = None
        while True:
            items, cursor = self.table.query_page(
                index=None, partition_name="pk", partition=keyspace.task_partition(task_id), limit=200, cursor=cursor,
                forward=False, sort_condition=("sk", ">", keyspace.PROOF_SK_PREFIX),
                filters={"type": "proof", "stage": stage, "iteration": iteration, "status": ProofStatus.stored.value})
            found.extend(item_to_proof(i) for i in items)
            if not cursor:
                return found

    def of_project(self, project_id: str, limit: int, cursor: Optional[str],
                   proof_type: Optional[str] = None, run_id: Optional[str] = None) -> Page:
        filters = {k: v for k, v in (("proof_type", proof_type), ("run_id", run_id)) if v}
        items, next_cursor = self.table.query_page(
            index="gsi1", partition_name="gsi1pk", partition=keyspace.proofs_of_project(project_id), limit=limit,
            cursor=cursor, forward=False, filters=filters or None, names=GSI1_NAMES)
        return Page([item_to_proof(i) for i in items], next_cursor)


__all__ = ["ProofRepository", "item_to_proof", "proof_to_item"]
