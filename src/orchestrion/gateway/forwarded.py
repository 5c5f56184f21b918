"""Who the client is, and the headers that tell a service.

The client address is the socket peer, unless the peer is a trusted proxy (a load
balancer in front of the gateway): then it is the right-most address in
``X-Forwarded-For`` that is not itself trusted. Clients cannot spoof it: a forged
``X-Forwarded-For`` from an untrusted peer is dropped, not extended.

Hop-by-hop headers (RFC 9110 §7.6.1, plus any the ``Connection`` header names) never
cross the gateway.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_FORWARDED = frozenset(
    {b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"}
)
_WEBSOCKET = frozenset(
    {
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
    }
)
# The scope entry where the gateway keeps the client address it settled on.
CLIENT_IP = "orchestrion.client_ip"


def networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Parse addresses or CIDRs (``10.0.0.0/8``, ``127.0.0.1``)."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def in_networks(address: str, nets: tuple[Network, ...]) -> bool:
    """Whether ``address`` lies in one of ``nets`` (False for what is not an IP)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in nets)


def client_ip(scope: Scope, trusted: tuple[Network, ...]) -> str:
    """The client's address, looking through trusted proxies only."""
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    if not trusted or not in_networks(peer, trusted):
        return peer
    chain: list[str] = [
        hop.strip()
        for name, value in scope["headers"]
        if name == b"x-forwarded-for"
        for hop in value.decode("latin-1").split(",")
    ]
    for hop in reversed(chain):
        if hop and not in_networks(hop, trusted):
            return hop
    return chain[0] if chain and chain[0] else str(peer)


def upstream_headers(
    scope: Scope, *, trusted_peer: bool, given: list[tuple[bytes, bytes]] | None = None
) -> list[tuple[bytes, bytes]]:
    """The request headers a service receives: hop-by-hop ones dropped, ``X-Forwarded-*`` set.

    ``Host`` and ``Content-Length`` are dropped too: the client library sets the upstream's
    host and the length of what it actually sends. ``given``: the headers to start from
    (default: the scope's).
    """
    raw = scope["headers"] if given is None else given
    drop = {
        token.strip().lower().encode()
        for name, value in raw
        if name == b"connection"
        for token in value.decode("latin-1").split(",")
    }
    prior_for = b""
    host = b""
    proto = b""
    headers: list[tuple[bytes, bytes]] = []
    for name, value in raw:
        if name in HOP_BY_HOP or name in drop or name in _WEBSOCKET:
            continue
        if name == b"host":
            host = value
        elif name in _FORWARDED:
            if trusted_peer and name == b"x-forwarded-for":
                prior_for = value if not prior_for else prior_for + b", " + value
            elif trusted_peer and name == b"x-forwarded-proto":
                proto = value
            elif trusted_peer and name == b"x-forwarded-host":
                host = value
        elif name != b"content-length":
            headers.append((name, value))
    client = scope.get("client")
    peer = str(client[0]).encode() if client else b""
    if peer:
        headers.append((b"x-forwarded-for", prior_for + b", " + peer if prior_for else peer))
    headers.append((b"x-forwarded-proto", proto or str(scope.get("scheme", "http")).encode()))
    if host:
        headers.append((b"x-forwarded-host", host))
    return headers
