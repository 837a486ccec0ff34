"""Webhooks: a project's subscribers to its events, their deliveries, and the rules they follow.

A webhook names a URL, the event patterns it wants (``domain.events``), an optional secret
(generated when absent, shown once) and a body format (``baton``, or ``slack``: ``{"text": ...}``).
A delivery is one event for one webhook: ``POST <url>`` with the body below and the headers
``Baton-Event``, ``Baton-Delivery`` and ``Baton-Signature: sha256=<hex HMAC-SHA256 of the raw body>``,
at least once, in ``seq`` order per run, retried with exponential backoff and jitter, ``failed``
once its retry window (24 h) is over.

URLs (``check_url``; the addresses a host resolves to are checked by ``address_refusal`` where the
name is resolved, at creation and again before every delivery): https only, no credentials, never
to a loopback, private, link-local (the metadata service), multicast, reserved or otherwise
non-global address. The local stack's setting ``allow_loopback`` also allows http and https to
127.0.0.1, ::1 and localhost (a receiver on the developer's machine), nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import math
import secrets
from enum import Enum
from typing import Any, Literal, Optional, Union
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
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


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


def literal_address(host: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    address = literal_address(host)
    return address.is_loopback if address is not None else (host in LOOPBACK_NAMES or host.endswith(".localhost"))


def address_refusal(address: str, allow_loopback: bool = False) -> Optional[str]:
    """Why deliveries may not go to ``address`` (an IP literal), or None when they may."""
    ip = literal_address(address.split("%", 1)[0])
    if ip is None:
        return f"{address!r} is not an IP address"
    # An IPv6 address that carries an IPv4 one (mapped, 6to4, Teredo, NAT64) is checked as both,
    # the IPv4 one first (its reason is the telling one).
    candidates: list[Any] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        candidates = [ip.ipv4_mapped]   # ::ffff:a.b.c.d is a.b.c.d
    elif isinstance(ip, ipaddress.IPv6Address):
        embedded = [a for a in (ip.sixtofour, *(ip.teredo or ())) if a is not None]
        if ip in ipaddress.ip_network("64:ff9b::/96"):   # NAT64: the IPv4 address in its last 32 bits
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        candidates = [*embedded, ip]
    for candidate in candidates:
        if candidate.is_loopback:
            if allow_loopback:
                continue
            return f"{address} is a loopback address"
        if candidate.is_link_local:
            return f"{address} is a link-local address (such as the instance metadata service)"
        if candidate.is_multicast:
            return f"{address} is a multicast address"
        if candidate.is_unspecified or candidate.is_reserved:
            return f"{address} is a reserved address"
        if candidate.is_private or not candidate.is_global:
            return f"{address} is a private address"
    return None


def check_url(url: str, allow_loopback: bool = False) -> tuple[str, str, int]:
    """``(scheme, host, port)`` when the stack may deliver to ``url`` as far as the URL itself says
    (a host name's addresses are checked where it is resolved); ValueError saying why not."""
    scheme, host, port = check_url_shape(url)
    loopback = is_loopback_host(host)
    if loopback and not allow_loopback:
        raise ValueError(f"url must not point at this machine ({host}): webhooks go to public hosts only")
    if scheme != "https" and not loopback:
        raise ValueError("url must be https:// (plain http only to 127.0.0.1 or localhost on the local stack)")
    address = literal_address(host)
    if address is not None:
        refusal = address_refusal(str(address), allow_loopback)
        if refusal:
            raise ValueError(f"url must point at a public address: {refusal}")
    return scheme, host, port


__all__ = ["DELIVERY_HEADER", "DeliveryStatus", "EVENT_HEADER", "MAX_WEBHOOKS_PER_PROJECT", "SIGNATURE_HEADER",
           "USER_AGENT", "Webhook", "WebhookCreate", "WebhookCreated", "WebhookDelivery", "WebhookFormat",
           "address_refusal", "check_url", "check_url_shape", "delivery_body", "delivery_id", "is_loopback_host",
           "message_group", "new_secret", "retry_delay", "signature", "slack_escape", "verify"]
