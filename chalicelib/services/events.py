"""Publishing audit events: what a ``PublishEvents`` outbox record owes once its commit succeeded.

1. Put the events on the stack's EventBridge bus (``adapters.events.EventBus``). When EventBridge
   refuses an entry (``FailedEntryCount``), the record stays and the sweeper retries it.
2. Fan them out to the project's webhooks whose patterns match each event: a pending delivery
   per (webhook, event), written only if it is not there yet, and a message on the webhook queue
   (FIFO: group = webhook and run, deduplication id = the delivery id). Doing it twice writes
   nothing new and sends nothing new (the queue drops a repeated deduplication id, and the
   deliverer skips what its cursor passed), so a retried record is harmless.

When the bus took the events but the fan-out failed, the record is marked ``bus_done`` so that
its retry does not put the events on the bus again. The deliveries themselves run elsewhere
(``services.webhook_delivery``, on the webhook queue's own handler): a slow or failing receiver
never delays a commit.
"""

from __future__ import annotations

import logging
from typing import Optional

from ..adapters.dynamodb import Repositories
from ..adapters.events import EventBus, PublishError, WebhookQueue
from ..domain import clock
from ..domain.events import matches
from ..domain.messages import PublishEvents, WebhookMessage
from ..domain.webhooks import WebhookDelivery, delivery_id

logger = logging.getLogger("baton.events")


class EventPublisher:
    def __init__(self, repos: Repositories, bus: Optional[EventBus], webhooks: Optional[WebhookQueue]):
        self.repos = repos
        self.bus = bus
        self.webhooks = webhooks

    def deliver(self, record: PublishEvents) -> None:
        """Publish the record's events; raises (the record stays) when any part did not go out."""
        if self.bus is not None and not record.bus_done:
            failed = self.bus.put(record.events)
            if failed:
                raise PublishError(f"EventBridge refused {failed} of {len(record.events)} event(s) of run "
                                   f"{record.run_id}")
            try:
                self.fan_out(record)
            except Exception:
                self.repos.outbox.mark_published(record.id)
                raise
            return
        self.fan_out(record)

    def fan_out(self, record: PublishEvents) -> int:
        """Pending deliveries and their messages for every matching webhook; returns how many messages."""
        if self.webhooks is None:
            return 0
        hooks = self.repos.webhooks.of_project(record.project_id)
        if not hooks:
            return 0
        messages = []
        now = clock.now_iso()
        for event in record.events:
            for hook in hooks:
                if not matches(hook.events, event["action"]):
                    continue
                delivery = WebhookDelivery(delivery_id=delivery_id(hook.id, record.run_id, event["seq"]),
                                           webhook_id=hook.id, run_id=record.run_id, event_seq=event["seq"],
                                           action=event["action"], created_at=now)
                self.repos.webhooks.add_delivery(delivery)   # False: fanned out before; the message is sent again
                messages.append(WebhookMessage(webhook_id=hook.id, run_id=record.run_id, seq=event["seq"],
                                               delivery_id=delivery.delivery_id))
        if messages:
            self.webhooks.send(messages)
            logger.info("fanned out %d delivery(ies) of run %s", len(messages), record.run_id,
                        extra={"run_id": record.run_id})
        return len(messages)


__all__ = ["EventPublisher"]
