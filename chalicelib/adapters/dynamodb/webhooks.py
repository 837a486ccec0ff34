"""Webhooks: ``WEBHOOK#{id}``/``META`` (the webhook with its secret), listed per project on gsi1;
in the same partition its deliveries (``DELIVERY#{run}#{seq}``, one per event and webhook, written
conditionally so that fanning an event out again never doubles one) and its per-run cursors
(``STREAM#{run}``: every matching event up to ``through`` delivered or failed). Deliveries expire
(TTL) 30 days after they were written, cursors 90 days after they last moved."""

from __future__ import annotations

import time
from typing import Any, Optional

from ...domain.webhooks import DeliveryStatus, Webhook, WebhookDelivery
from . import keyspace
from .table import GSI1_NAMES, KEY_NAMES, Page, Table

DELIVERY_TTL_SECONDS = 30 * 24 * 3600
STREAM_TTL_SECONDS = 90 * 24 * 3600
MAX_ERROR_LENGTH = 300


def webhook_to_item(webhook: Webhook, secret: str) -> dict[str, Any]:
    return {**keyspace.webhook(webhook.id), **keyspace.webhook_list_entry(webhook.project_id, webhook.id),
            "type": "webhook", **webhook.model_dump(mode="json"), "secret": secret}


def item_to_webhook(item: dict[str, Any]) -> Webhook:
    return Webhook(**{k: v for k, v in item.items() if k in Webhook.model_fields})


def delivery_to_item(delivery: WebhookDelivery) -> dict[str, Any]:
    return {**keyspace.webhook_delivery(delivery.webhook_id, delivery.run_id, delivery.event_seq),
            "type": "webhook_delivery", **delivery.model_dump(mode="json"),
            "expires_at_epoch": int(time.time()) + DELIVERY_TTL_SECONDS}


def item_to_delivery(item: dict[str, Any]) -> WebhookDelivery:
    return WebhookDelivery(**{k: v for k, v in item.items() if k in WebhookDelivery.model_fields})


class WebhookRepository:
    def __init__(self, table: Table):
        self.table = table

    # ---- webhooks

    def create(self, webhook: Webhook, secret: str) -> None:
        self.table.transact([self.table.put_op(webhook_to_item(webhook, secret), "attribute_not_exists(pk)")])

    def get(self, webhook_id: str) -> Optional[tuple[Webhook, str]]:
        """The webhook and its secret (which only deliveries read)."""
        item = self.table.get(keyspace.webhook(webhook_id))
        return (item_to_webhook(item), str(item.get("secret", ""))) if item else None

    def list(self, project_id: str, limit: int, cursor: Optional[str]) -> Page:
        items, next_cursor = self.table.query_page(index="gsi1", partition_name="gsi1pk",
                                                   partition=keyspace.webhooks_of_project(project_id), limit=limit,
                                                   cursor=cursor, names=GSI1_NAMES)
        return Page([item_to_webhook(i) for i in items], next_cursor)

    def of_project(self, project_id: str, limit: int = 100) -> list[Webhook]:
        """Every webhook of the project (they are few: one Query), for matching an event."""
        return list(self.list(project_id, limit, None).items)

    def delete(self, webhook_id: str) -> None:
        """The webhook goes; its deliveries and cursors stay until their TTL (nothing reads them: a
        message for a webhook that is gone is dropped)."""
        self.table.delete(keyspace.webhook(webhook_id))

    # ---- deliveries

    def add_delivery(self, delivery: WebhookDelivery) -> bool:
        """Write a pending delivery unless it exists (False then: this event was fanned out before)."""
        return self.table.write(self.table.put_op(delivery_to_item(delivery), "attribute_not_exists(pk)"))

    def delivery(self, webhook_id: str, run_id: str, seq: int) -> Optional[WebhookDelivery]:
        item = self.table.get(keyspace.webhook_delivery(webhook_id, run_id, seq))
        return item_to_delivery(item) if item else None

    def deliveries(self, webhook_id: str, limit: int, cursor: Optional[str]) -> Page:
        """Newest run first, its latest event first."""
        items, next_cursor = self.table.query_page(
            index=None, partition_name="pk", partition=keyspace.webhook_partition(webhook_id), limit=limit,
            cursor=cursor, forward=False, sort_condition=("sk", "begins_with", keyspace.DELIVERY_SK_PREFIX),
            names=KEY_NAMES)
        return Page([item_to_delivery(i) for i in items], next_cursor)

    def record_attempt(self, delivery: WebhookDelivery, *, at: str, status_code: Optional[int], error: str,
                       next_attempt_at: str) -> bool:
        """A failed attempt of a pending delivery, and when the next one is due."""
        return self._finish(delivery, at=at, status_code=status_code, error=error,
                            extra="#next = :next", values={":next": next_attempt_at})

    def record_delivered(self, delivery: WebhookDelivery, *, at: str, status_code: int) -> bool:
        return self._finish(delivery, at=at, status_code=status_code, error="", status=DeliveryStatus.delivered,
                            extra="delivered_at = :at", remove_next=True)

    def record_failed(self, delivery: WebhookDelivery, *, at: str, status_code: Optional[int], error: str) -> bool:
        return self._finish(delivery, at=at, status_code=status_code, error=error, status=DeliveryStatus.failed,
                            extra="failed_at = :at", remove_next=True)

    def _finish(self, delivery: WebhookDelivery, *, at: str, status_code: Optional[int], error: str,
                extra: str, status: Optional[DeliveryStatus] = None, values: Optional[dict[str, Any]] = None,
                remove_next: bool = False) -> bool:
        """One attempt more on a delivery still pending (False when it is not pending any more)."""
        sets = ["attempts = if_not_exists(attempts, :zero) + :one", "first_attempt_at = if_not_exists(first_attempt_at, :at)",
                "last_error = :error", extra]
        all_values: dict[str, Any] = {":zero": 0, ":one": 1, ":at": at, ":error": error[:MAX_ERROR_LENGTH] or None,
                                      ":pending": DeliveryStatus.pending.value, **(values or {})}
        if status is not None:
            sets.append("#status = :status")
            all_values[":status"] = status.value
        removes = ["#next"] if remove_next else []
        if status_code is None:
            removes.append("last_status_code")
        else:
            sets.append("last_status_code = :code")
            all_values[":code"] = status_code
        if all_values[":error"] is None:
            sets.remove("last_error = :error")
            del all_values[":error"]
            removes.append("last_error")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        names = {"#status": "status"}
        if "#next" in expression:
            names["#next"] = "next_attempt_at"
        return self.table.write(self.table.update_op(
            keyspace.webhook_delivery(delivery.webhook_id, delivery.run_id, delivery.event_seq), expression,
            condition="#status = :pending", names=names, values=all_values))

    # ---- per-run cursors

    def stream(self, webhook_id: str, run_id: str) -> dict[str, Any]:
        """``through`` (0 before the first delivery) and ``attention_id`` (when failures opened one)."""
        item = self.table.get(keyspace.webhook_stream(webhook_id, run_id)) or {}
        return {"through": int(item.get("through", 0)), "attention_id": item.get("attention_id")}

    def advance(self, webhook_id: str, run_id: str, seq: int) -> bool:
        """Every matching event up to ``seq`` is done (False when the cursor was there already)."""
        return self.table.write(self.table.update_op(
            keyspace.webhook_stream(webhook_id, run_id), "SET through = :seq, expires_at_epoch = :ttl",
            condition="attribute_not_exists(through) OR through < :seq",
            values={":seq": int(seq), ":ttl": int(time.time()) + STREAM_TTL_SECONDS}))

    def attention_op(self, webhook_id: str, run_id: str, attention_id: str) -> dict[str, Any]:
        """Name the stream's attention item, once: the transaction that opens the item fails when the
        stream has one already (one item per webhook and run, however many deliveries fail)."""
        return self.table.update_op(
            keyspace.webhook_stream(webhook_id, run_id), "SET attention_id = :id, expires_at_epoch = :ttl",
            condition="attribute_not_exists(attention_id)",
            values={":id": attention_id, ":ttl": int(time.time()) + STREAM_TTL_SECONDS})


__all__ = ["WebhookRepository", "delivery_to_item", "item_to_delivery", "item_to_webhook", "webhook_to_item"]
