"""Webhooks: a project's subscribers to its events, their deliveries, and the rules they follow.

A webhook names a URL, the event patterns it wants (``domain.events``), an optional secret
(generated when absent, shown once) and a body format (``baton``, or ``slack``: ``{"text": ...}``).
A delivery is one event for one webhook: ``POST <url>`` with the body below and the headers
``Baton-Event``, ``Baton-Delivery`` and ``Baton-Signature: sha256=<hex HMAC-SHA256 of the raw body>``,
at least once, in ``seq`` order per run, retried with exponential backoff and jitter, ``failed``
once its retry window (24 h) is over.

URLs: ``check_url_shape`` here (what any URL must be), ``domain.webhook_addresses`` for where a
delivery may go.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
from enum import Enum
from typing import Any, Literal, Optional
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from . import ids
from .base import DomainModel
from .events import check_patterns, summary_line
from .fields import STRICT_INPUT

MAX_URL_LENGTH = 2048
MAX_WEBHOOKS_PER_PROJECT = 20
SECRET_BYTES = 32
SIGNATURE_HEADER = "Baton-Signature"
EVENT_HEADER = "Baton-Event"
DELIVERY_HEADER = "Baton-Delivery"
USER_AGENT = "Baton-Webhooks/1"


class DeliveryStatus(str, Enum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


WebhookFormat = Literal["baton", "slack"]


class WebhookCreate(DomainModel):
    model_config = STRICT_INPUT
    url: str = Field(max_length=MAX_URL_LENGTH, description="https://host/path (http://127.0.0.1 on the local stack)")
    events: list[str] = Field(min_length=1, max_length=50, description="audit actions (approval.requested), families "
                                                                       "(run.*) or * for every event")
    secret: Optional[str] = Field(default=None, min_length=16, max_length=256,
                                  description="the HMAC-SHA256 key of Baton-Signature; generated when absent")
    format: WebhookFormat = Field(default="baton", description="baton: the event as JSON; slack: {\"text\": ...}")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        check_url_shape(value)
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return check_patterns(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not value.isprintable() or not value.isascii() or value != value.strip()):
            raise ValueError("secret must be printable ASCII without leading or trailing spaces")
        return value


class Webhook(DomainModel):
    id: str
    project_id: str
    url: str
    events: list[str]
    format: WebhookFormat = "baton"
    created_at: str
    created_by: str = ""


class WebhookCreated(Webhook):
    secret: str = Field(description="shown once, in this answer only")


class WebhookDelivery(DomainModel):
    delivery_id: str
    webhook_id: str
    run_id: str
    event_seq: int
    action: str
    status: DeliveryStatus = DeliveryStatus.pending
    attempts: int = 0
    last_status_code: Optional[int] = None
    last_error: Optional[str] = None
    next_attempt_at: Optional[str] = None
    created_at: str
    delivered_at: Optional[str] = None
    failed_at: Optional[str] = None


def new_secret() -> str:
    return ids.WEBHOOK_SECRET + secrets.token_urlsafe(SECRET_BYTES)


def delivery_id(webhook_id: str, run_id: str, seq: int) -> str:
    """The same id whoever fans the event out, however often: the webhook queue's deduplication id
    and the receiver's ``Baton-Delivery`` (a receiver that saw it already may ignore it)."""
    digest = hashlib.sha256(f"{webhook_id}:{run_id}:{int(seq)}".encode()).digest()
    return f"{ids.DELIVERY}_{base64.b32encode(digest).decode().rstrip('=').lower()[:26]}"


def message_group(webhook_id: str, run_id: str) -> str:
    """Deliveries of one webhook for one run go out one after the other, in ``seq`` order."""
    return f"{webhook_id}.{run_id}"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does with ``Baton-Signature`` (the README shows the same few lines)."""
    return hmac.compare_digest(signature(secret, body), header or "")


def slack_escape(text: str) -> str:
    """Slack reads ``<...>`` as links and mentions (``<!channel>``): agents' text must not ping anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def delivery_body(delivery: str, event: dict[str, Any], body_format: str,
                  project_name: Optional[str] = None) -> bytes:
    """The raw body of a delivery (what the signature covers): ``event`` as ``events.published`` made it."""
    if body_format == "slack":
        payload: dict[str, Any] = {"text": slack_escape(summary_line(event, project_name))}
    else:
        payload = {"delivery_id": delivery, "action": event["action"], "at": event["at"],
                   "project_id": event["project_id"], "run_id": event["run_id"], "seq": event["seq"],
                   "actor": event.get("actor", ""), "entity": event.get("entity", ""), "data": event.get("data") or {}}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def retry_delay(attempts: int, base_seconds: float, cap_seconds: float, jitter: float) -> int:
    """Seconds before attempt ``attempts + 1``: exponential (base × 2^(attempts-1)), capped, with
    "equal jitter" (half fixed, half ``jitter`` in [0, 1)), at least one second."""
    exponential = min(cap_seconds, base_seconds * 2 ** max(0, min(attempts - 1, 40)))
    return max(1, math.ceil(exponential / 2 + jitter * exponential / 2))


# ---- URLs and addresses


def check_url_shape(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a URL a webhook may name, whatever the stack (ValueError otherwise):
    http or https, a host, no credentials, no fragment, printable."""
    if not isinstance(url, str) or not url.isprintable() or any(c.isspace() for c in url) or len(url) > MAX_URL_LENGTH:
        raise ValueError("url must be an https URL without spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("url is not a valid URL (check the host and the port)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise ValueError("url must be https://host/path")
    if parts.username is not None or parts.password is not None:
        raise ValueError("url must not carry credentials (user:password@); sign deliveries with the secret instead")
    if parts.fragment:
        raise ValueError("url must not have a #fragment")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ValueError("url must name a host")
    return scheme, host, port or (443 if scheme == "https" else 80)


__all__ = ["DELIVERY_HEADER", "DeliveryStatus", "EVENT_HEADER", "MAX_WEBHOOKS_PER_PROJECT", "SIGNATURE_HEADER",
           "USER_AGENT", "Webhook", "WebhookCreate", "WebhookCreated", "WebhookDelivery", "WebhookFormat",
           "check_url_shape", "delivery_body", "delivery_id", "message_group", "new_secret", "retry_delay", "signature",
           "slack_escape", "verify"]
