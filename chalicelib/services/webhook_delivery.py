"""Delivering to a webhook: one message of the webhook queue at a time, in ``seq`` order per run.

A message names an event (run and ``seq``) for a webhook. The webhook's cursor for that run
(``through``) says how far its deliveries got; the deliverer reads the run's events after it up to
the message's (usually just that one: more only when an earlier fan-out has not happened yet) and
delivers those the webhook's patterns match, in order. So a receiver sees a run's events in order
even when their fan-outs were not, and a message whose event the cursor passed is done at once.

An attempt POSTs the body, signed (``Baton-Signature``), with a short timeout (``adapters.
webhook_http``). A 2xx answer delivers it and moves the cursor. Anything else counts an attempt on
the delivery (``attempts``, ``last_status_code``, ``next_attempt_at``) and answers how long the
message should stay invisible: exponential backoff with jitter (``domain.webhooks.retry_delay``),
the queue's FIFO group holding the run's later events back meanwhile. Once the delivery's retry
window (24 h from when it was fanned out) is over, a failed attempt makes it ``failed``, opens an
attention item (once per webhook and run) and moves the cursor on, so the run's later events go.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import urlsplit

from ..adapters.dynamodb import Repositories, TransactionCancelledError
from ..adapters.webhook_http import PostOutcome, WebhookSender
from ..domain import clock, ids
from ..domain.entities import AttentionItem, Event
from ..domain.enums import AttentionKind
from ..domain.events import matches, published
from ..domain.ids import new_id
from ..domain.messages import WebhookMessage
from ..domain.webhooks import (DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, DeliveryStatus, Webhook,
                               WebhookDelivery, delivery_body, delivery_id, retry_delay, signature)

logger = logging.getLogger("baton.webhooks")
EVENTS_PAGE = 500


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff from ``base_seconds`` (doubling per attempt, with jitter) up to
    ``cap_seconds`` between attempts, for ``give_up_seconds`` after a delivery was fanned out."""

    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    give_up_seconds: float = 24 * 3600.0


class WebhookDeliverer:
    def __init__(self, repos: Repositories, sender: WebhookSender, policy: RetryPolicy = RetryPolicy(),
                 jitter: Callable[[], float] = random.random):
        self.repos = repos
        self.sender = sender
        self.policy = policy
        self.jitter = jitter

    def handle(self, message: WebhookMessage) -> Optional[int]:
        """Deliver what the message asks for; None when it is done, else the seconds until it should
        be tried again (the caller keeps it invisible that long)."""
        found = self.repos.webhooks.get(message.webhook_id)
        if found is None:
            return None   # removed meanwhile: nothing more goes to it
        hook, secret = found
        through = self.repos.webhooks.stream(hook.id, message.run_id)["through"]
        if message.seq <= through:
            return None
        project_name = None
        for event in self._due(hook, message.run_id, through, message.seq):
            delivery = self._delivery(hook, message.run_id, event)
            if delivery.status == DeliveryStatus.pending:
                if hook.format == "slack" and project_name is None:
                    project = self.repos.projects.get(hook.project_id)
                    project_name = project.name if project else hook.project_id
                wait = self._attempt(hook, secret, delivery, event, project_name)
                if wait is not None:
                    return wait
            self.repos.webhooks.advance(hook.id, message.run_id, event.seq)
        return None

    def _due(self, hook: Webhook, run_id: str, through: int, upto: int) -> list[Event]:
        """The run's events after ``through`` up to ``upto`` that the webhook wants, in order."""
        wanted: list[Event] = []
        after = through
        while after < upto:
            page = self.repos.audit.events_after(run_id, after, min(EVENTS_PAGE, upto - after))
            if not page:
                break
            # Events from before the webhook existed are not its (a webhook added mid-run starts there).
            wanted += [e for e in page if e.seq <= upto and e.at >= hook.created_at and matches(hook.events, e.action)]
            after = page[-1].seq
        return wanted

    def _delivery(self, hook: Webhook, run_id: str, event: Event) -> WebhookDelivery:
        existing = self.repos.webhooks.delivery(hook.id, run_id, event.seq)
        if existing is not None:
            return existing
        delivery = WebhookDelivery(delivery_id=delivery_id(hook.id, run_id, event.seq), webhook_id=hook.id,
                                   run_id=run_id, event_seq=event.seq, action=event.action, created_at=clock.now_iso())
        if not self.repos.webhooks.add_delivery(delivery):   # written meanwhile by its fan-out
            return self.repos.webhooks.delivery(hook.id, run_id, event.seq) or delivery
        return delivery

    def _attempt(self, hook: Webhook, secret: str, delivery: WebhookDelivery, event: Event,
                 project_name: Optional[str]) -> Optional[int]:
        body = delivery_body(delivery.delivery_id, published(event.model_dump(mode="json"), hook.project_id,
                                                             delivery.run_id), hook.format, project_name)
        outcome = self.sender.post(hook.url, body, {EVENT_HEADER: event.action, DELIVERY_HEADER: delivery.delivery_id,
                                                    SIGNATURE_HEADER: signature(secret, body)})
        now = clock.now_iso()
        log = {"run_id": delivery.run_id, "webhook_id": hook.id, "delivery_id": delivery.delivery_id,
               "seq": delivery.event_seq, "status_code": outcome.status}
        if outcome.ok:
            self.repos.webhooks.record_delivered(delivery, at=now, status_code=outcome.status or 200)
            logger.info("webhook delivery done", extra=log)
            return None
        if now >= clock.plus_seconds(delivery.created_at, self.policy.give_up_seconds):
            self._give_up(hook, delivery, outcome, now)
            logger.warning("webhook delivery failed for good: %s", outcome.error, extra=log)
            return None
        wait = retry_delay(delivery.attempts + 1, self.policy.base_seconds, self.policy.cap_seconds, self.jitter())
        self.repos.webhooks.record_attempt(delivery, at=now, status_code=outcome.status, error=outcome.error,
                                           next_attempt_at=clock.plus_seconds(now, wait))
        logger.info("webhook delivery failed (%s); next attempt in %d s", outcome.error, wait, extra=log)
        return wait

    def _give_up(self, hook: Webhook, delivery: WebhookDelivery, outcome: PostOutcome, now: str) -> None:
        """``failed``, and an attention item for the webhook's run (once: the stream names it)."""
        host = urlsplit(hook.url).hostname or hook.url
        item = AttentionItem(
            id=new_id(ids.ATTENTION), kind=AttentionKind.webhook, project_id=hook.project_id, run_id=delivery.run_id,
            summary=f"webhook to {host} failing: {delivery.action} #{delivery.event_seq} of this run was not delivered "
                    f"after {self.policy.give_up_seconds / 3600:g} h of retries",
            details={"webhook_id": hook.id, "delivery_id": delivery.delivery_id, "last_status_code": outcome.status,
                     "last_error": outcome.error[:300]}, created_at=now)
        try:
            self.repos.table.transact([self.repos.webhooks.attention_op(hook.id, delivery.run_id, item.id),
                                       self.repos.attention.open_op(item)])
        except TransactionCancelledError as error:   # one is open for this webhook and run already
            logger.info("no new attention item for webhook %s: %s", hook.id, error,
                        extra={"run_id": delivery.run_id})
        self.repos.webhooks.record_failed(delivery, at=now, status_code=outcome.status, error=outcome.error)


__all__ = ["RetryPolicy", "WebhookDeliverer"]
