"""Refusing HTTP destinations outside the public internet (server-side request forgery).

A workflow author must not reach the platform's own network. :class:`NetGuard` allows
only globally routable addresses (``ipaddress``'s ``is_global``), so private, loopback,
link-local, shared (``100.64.0.0/10``, where some clouds put their metadata service),
reserved and multicast ranges are refused, as are IPv6 forms that embed a refused IPv4
address (IPv4-mapped, 6to4, NAT64, Teredo) and IPv4 written in odd notations
(``0x7f.1``, ``2130706433``). A host, or a CIDR containing the address, may be
allow-listed (``ORCHESTRION_ENGINE__HTTP_ALLOWLIST``).

Checking a name and then letting the HTTP client resolve it again is not enough: the
second answer may differ (DNS rebinding). :class:`GuardedTransport` resolves once,
checks, and connects to the address it checked; the ``Host`` header, TLS SNI and
certificate verification still use the name.

Exception tree::

    BlockedDestination
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import ModuleType
from typing import Any

import anyio
import httpcore
import httpx

from orchestrion.kernel.http.tls import client_context
from orchestrion.kernel.observability import tracing

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Answers the addresses of ``(host, port)``, as strings (a test may answer anything).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class BlockedDestination(Exception):
    """The URL's host resolves into a forbidden range."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives for ``host``."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition form carries, if it is one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` (and any IPv4 address it embeds) is globally routable."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_v4(address)
        if embedded is not None:
            return is_public(embedded)
    return bool(
        address.is_global
        and not (
            address.is_multicast
            or address.is_reserved
            or address.is_unspecified
            or address.is_loopback
            or address.is_link_local
        )
    )


def _odd_ipv4(host: str) -> bool:
    """IPv4 in a notation ``inet_aton`` takes but dotted-quad parsing does not."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return True
    return False


class NetGuard:
    """Decides which addresses a tenant's request may reach, and resolves names once.

    ``allowlist`` holds host names and CIDRs that are reachable even if not public;
    ``resolver`` answers names (the system's by default).
    """

    def __init__(self, allowlist: Iterable[str] = (), *, resolver: Resolver | None = None):
        self.hosts: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for raw in allowlist:
            entry = raw.strip()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))
        self.resolver: Resolver = resolver or system_resolver

    def permits(self, host: str, address: IPAddress) -> bool:
        """Whether ``host`` may be reached at ``address``."""
        if is_public(address) or host.lower().rstrip(".") in self.hosts:
            return True
        return any(address.version == net.version and address in net for net in self.networks)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of ``host``, every one checked (raises BlockedDestination)."""
        name = host.strip("[]")
        if _odd_ipv4(name):
            raise BlockedDestination(
                f"{host} is an IPv4 address in an ambiguous notation; write it as a.b.c.d"
            )
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(name)]
        except ValueError:
            try:
                answers = await self.resolver(name, port)
            except OSError as exc:
                raise BlockedDestination(f"cannot resolve {host}: {exc}") from None
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in answers]
        if not addresses:
            raise BlockedDestination(f"cannot resolve {host}: no addresses")
        for address in addresses:
            if not self.permits(name, address):
                raise BlockedDestination(
                    f"{host} resolves to {address}, which is not a public address; "
                    "allow it with ORCHESTRION_ENGINE__HTTP_ALLOWLIST"
                )
        return addresses


async def check_destination(
    host: str, port: int, allowlist: Iterable[str], *, resolver: Resolver | None = None
) -> None:
    """Raise :class:`BlockedDestination` unless every address of ``host`` is allowed.

    A check only: to connect, use :class:`GuardedTransport`, which dials what it checked.
    """
    await NetGuard(allowlist, resolver=resolver).resolve(host, port)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses ``guard`` checked.

    ``core`` is the httpcore module whose backend is wrapped and whose errors are raised:
    ``httpcore`` (httpx) by default, or ``httpcore2`` (httpx2, which the MCP SDK uses).
    """

    def __init__(
        self,
        guard: NetGuard,
        backend: Any | None = None,
        *,
        core: ModuleType = httpcore,
    ) -> None:
        self.guard = guard
        self.core = core
        self.backend = backend or core.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve ``host`` once, check every address, connect to the first that answers."""
        try:
            with anyio.fail_after(timeout):
                addresses = await self.guard.resolve(host, port)
        except TimeoutError:
            raise self.core.ConnectTimeout(f"resolving {host} timed out") from None
        failure: Exception | None = None
        for address in addresses:
            try:
                stream: httpcore.AsyncNetworkStream = await self.backend.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (self.core.ConnectError, self.core.ConnectTimeout) as exc:
                failure = exc
            else:
                return stream
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: a tenant's request does not reach local sockets."""
        raise BlockedDestination("unix sockets are not reachable")

    async def sleep(self, seconds: float) -> None:
        """Sleep as the wrapped backend does."""
        await self.backend.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose connections go only where ``guard`` allows.

    Without ``keepalive`` a connection is closed once its response is read, so nothing
    outlives a request (no pool to close, no connection shared between tenants).
    Environment proxies are ignored: a proxy would resolve the name itself.
    """

    def __init__(
        self,
        guard: NetGuard,
        *,
        verify: ssl.SSLContext | None = None,
        keepalive: bool = False,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        limits = httpx.Limits(max_keepalive_connections=None if keepalive else 0)
        context = verify or client_context()
        super().__init__(verify=context, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(guard, backend),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` (in a CLIENT span carrying its ``traceparent``, tracing on)."""
        return await tracing.traced_send(request, super().handle_async_request)  # type: ignore[no-any-return]


def guarded_client(guard: NetGuard, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client that reaches only what ``guard`` allows and keeps no cookies.

    Cookies are refused so that one tenant's responses never season another's requests.
    """
    transport = GuardedTransport(
        guard, keepalive=bool(kwargs.pop("keepalive", False)), backend=kwargs.pop("backend", None)
    )
    jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    kwargs.setdefault("follow_redirects", False)
    return httpx.AsyncClient(transport=transport, cookies=jar, **kwargs)
