"""Where a webhook delivery may go: https only, no credentials, never to a loopback, private,
link-local (the instance metadata service, 169.254.169.254), multicast, reserved or otherwise
non-global address. ``check_url`` checks a URL (and an IP literal in it); ``address_refusal`` each
address a host name resolves to, where it is resolved (``adapters.webhook_http``: at creation and
again before every delivery). The local stack's setting ``allow_loopback`` also allows http and
https to 127.0.0.1, ::1 and localhost (a receiver on the developer's machine), nothing else.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Optional, Union

from .webhooks import check_url_shape

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


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


__all__ = ["LOOPBACK_NAMES", "address_refusal", "check_url", "is_loopback_host", "literal_address"]
