"""A webhook's receiver over HTTP: resolve its host, refuse addresses deliveries may not reach,
and POST to the very address that was checked.

The host is resolved here, every address it resolves to is checked (``domain.webhooks.
address_refusal``: no loopback, private, link-local such as 169.254.169.254, multicast or reserved
address, loopback only on the local stack), and the connection goes to a checked address with the
host name for TLS (SNI and certificate) and the ``Host`` header. So a name that resolved to a
public address at creation and to the metadata service now (DNS rebinding) is refused now, and a
name cannot change its answer between the check and the connection. Redirects are not followed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from ..domain.webhook_addresses import address_refusal, check_url
from ..domain.webhooks import USER_AGENT

MAX_RESPONSE_BYTES = 64 * 1024
Resolver = Callable[[str, int], list[str]]


class UnsafeAddressError(ValueError):
    """The host resolves to an address deliveries may not reach."""


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (TCP), in the resolver's order; [] when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return list(dict.fromkeys(info[4][0] for info in infos))


def checked_addresses(host: str, port: int, allow_loopback: bool, resolver: Resolver = resolve) -> list[str]:
    """The addresses of ``host``, when every one of them may be reached; UnsafeAddressError naming the
    first that may not. [] when the name does not resolve (now: it may later)."""
    addresses = resolver(host, port)
    for address in addresses:
        refusal = address_refusal(address, allow_loopback)
        if refusal:
            raise UnsafeAddressError(f"{host} resolves to an address webhooks may not reach: {refusal}")
    return addresses


@dataclass
class PostOutcome:
    status: Optional[int]     # the receiver's HTTP status; None when none came (refused, timeout, TLS)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float, context: ssl.SSLContext):
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


class WebhookSender:
    """POSTs deliveries; ``timeout`` bounds each attempt as a whole (connect, send, answer)."""

    def __init__(self, *, allow_loopback: bool = False, timeout: float = 5.0, resolver: Resolver = resolve):
        self.allow_loopback = allow_loopback
        self.timeout = timeout
        self.resolver = resolver
        self._tls = ssl.create_default_context()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostOutcome:
        try:
            scheme, host, port = check_url(url, self.allow_loopback)
            addresses = checked_addresses(host, port, self.allow_loopback, self.resolver)
        except ValueError as refused:
            return PostOutcome(None, f"refused: {refused}")
        if not addresses:
            return PostOutcome(None, f"{host} does not resolve")
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        began = time.monotonic()
        connection: Any = (_PinnedHTTPSConnection(host, addresses[0], port, self.timeout, self._tls)
                           if scheme == "https" else _PinnedHTTPConnection(host, addresses[0], port, self.timeout))
        try:
            connection.request("POST", target, body=body, headers={
                "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
            response = connection.getresponse()
            read = 0
            while read < MAX_RESPONSE_BYTES and time.monotonic() - began < self.timeout:
                chunk = response.read(8192)
                if not chunk:
                    break
                read += len(chunk)
            return PostOutcome(response.status, "" if 200 <= response.status < 300 else
                               f"the receiver answered {response.status} {response.reason}"[:200])
        except (OSError, http.client.HTTPException, ssl.SSLError) as error:
            return PostOutcome(None, f"{type(error).__name__}: {error}"[:200])
        finally:
            connection.close()


__all__ = ["PostOutcome", "UnsafeAddressError", "WebhookSender", "checked_addresses", "resolve"]
