"""Refusing HTTP destinations inside private networks (server-side request forgery).

A workflow author must not reach the platform's own network: destinations that
resolve to private, loopback, link-local, multicast or reserved addresses are refused
before connecting, unless the host or a CIDR containing the address is allow-listed
(``ORCHESTRION_ENGINE__HTTP_ALLOWLIST``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedDestination(Exception):
    """The URL's host resolves into a forbidden range."""


def _forbidden(address: IPAddress) -> bool:
    return bool(
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _allowed(host: str, address: IPAddress, allowlist: Iterable[str]) -> bool:
    for entry in allowlist:
        entry = entry.strip()
        if not entry:
            continue
        if entry.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


async def check_destination(host: str, port: int, allowlist: Iterable[str]) -> None:
    """Raise :class:`BlockedDestination` unless every address of ``host`` is allowed."""
    allowed = tuple(allowlist)
    try:
        addresses = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise BlockedDestination(f"cannot resolve {host}: {exc}") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if _forbidden(address) and not _allowed(host, address, allowed):
            raise BlockedDestination(
                f"{host} resolves to {address}, a private or reserved address; "
                "allow it with ORCHESTRION_ENGINE__HTTP_ALLOWLIST"
            )
