"""How one service reaches another: an HTTP client per peer service, by name.

Services never import each other; they call each other's HTTP API. A :class:`Peers`
maps a service name to an ``httpx.AsyncClient`` whose base URL is that service and whose
default headers carry the internal token (so ``/internal/...`` endpoints, guarded by
``kernel.http.deps.Internal``, accept the calls).

The composer fills it: the embedded shape (``orchestrion.platform``) with in-process
ASGI clients, and sets it as ``app.state.peers`` on every service app before their
lifespans run; a standalone service builds one from base URLs with :meth:`Peers.from_urls`,
or finds the instances in the service registry with :meth:`Peers.from_registry`.

The registry is what ``orchestrion serve`` writes in Redis (``gateway/registry.py``): one
key per instance, ``<prefix><service>:<instance id>``, holding JSON with at least
``service``, ``id`` and ``url``, under a TTL its heartbeat renews.

Under mutual TLS the services are ``https://`` and every client here is given the
process's internal context (``verify``: the platform's CA, the process's certificate);
without it, the public one of :func:`orchestrion.kernel.http.tls.client_context`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import redis.asyncio as redis
from redis.exceptions import RedisError

from orchestrion.kernel.auth.identity import INTERNAL_HEADER, internal_token
from orchestrion.kernel.http.tls import client_context
from orchestrion.kernel.observability import tracing

DEFAULT_TIMEOUT_SECONDS = 10.0
logger = logging.getLogger("orchestrion.peers")
# A request finding no instance rescans at most this often (instances that just started).
_RESCAN_SECONDS = 0.25


def internal_headers(secret: bytes) -> dict[str, str]:
    """The headers that mark a call as internal (from the platform, not a client)."""
    return {INTERNAL_HEADER: internal_token(secret)}


class Peers(Mapping[str, httpx.AsyncClient]):
    """Service name → HTTP client to that service; closes only the clients it created."""

    def __init__(self, clients: Mapping[str, httpx.AsyncClient] | None = None) -> None:
        self._clients: dict[str, httpx.AsyncClient] = dict(clients or {})
        self._owned: list[httpx.AsyncClient] = []
        self._registry: RegistryReader | None = None

    @classmethod
    async def from_registry(
        cls,
        url: str,
        *,
        prefix: str,
        names: list[str],
        secret: bytes,
        request_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        interval: float = 1.0,
        verify: ssl.SSLContext | None = None,
    ) -> Peers:
        """Clients to the services ``names`` as registered in Redis at ``url`` (read now and
        every ``interval`` seconds); each request goes to one of the live instances, over
        TLS with ``verify`` when it is registered as ``https://``."""
        registry = RegistryReader(url, prefix=prefix, interval=interval)
        await registry.start()
        peers = cls()
        peers._registry = registry
        for name in names:
            client = httpx.AsyncClient(
                base_url=f"http://{name}",  # replaced per request by a registered instance
                headers=internal_headers(secret),
                timeout=request_timeout,
                transport=RegistryTransport(registry, name, verify=verify),
                event_hooks={"request": [tracing.inject_hook]},
            )
            peers.add(name, client)
            peers._owned.append(client)
        return peers

    @classmethod
    def from_urls(
        cls,
        urls: Mapping[str, str],
        *,
        secret: bytes,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        verify: ssl.SSLContext | None = None,
    ) -> Peers:
        """Clients with pooled keep-alive connections to the services at ``urls``
        (``https://`` ones checked with ``verify``)."""
        peers = cls()
        for name, url in urls.items():
            client = httpx.AsyncClient(
                base_url=url.rstrip("/"),
                headers=internal_headers(secret),
                timeout=timeout,
                verify=verify or client_context(),
                event_hooks={"request": [tracing.inject_hook]},
            )
            peers.add(name, client)
            peers._owned.append(client)
        return peers

    def add(self, name: str, client: httpx.AsyncClient) -> None:
        """Reach service ``name`` through ``client`` (replacing any earlier one)."""
        self._clients[name] = client

    def merged(self, other: Mapping[str, httpx.AsyncClient]) -> Peers:
        """These peers, completed by ``other`` for the names this one lacks."""
        combined = Peers({**other, **self._clients})
        combined._owned = self._owned
        return combined

    def __getitem__(self, name: str) -> httpx.AsyncClient:
        return self._clients[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._clients)

    def __len__(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        """Close the clients built by :meth:`from_urls` or :meth:`from_registry` (borrowed
        ones belong to their owner)."""
        for client in self._owned:
            await client.aclose()
        self._owned = []
        if self._registry is not None:
            await self._registry.aclose()
            self._registry = None


async def discover(
    names: tuple[str, ...],
    *,
    secret: bytes,
    given: Mapping[str, httpx.AsyncClient] | None = None,
    urls: Mapping[str, str] | None = None,
    registry_url: str | None = None,
    registry_prefix: str = "",
    verify: ssl.SSLContext | None = None,
) -> tuple[dict[str, httpx.AsyncClient], list[Peers]]:
    """Clients to the services ``names``: explicit base URLs (``urls``) first, then the
    composer's in-process clients (``given``), then the service registry at
    ``registry_url`` for those still missing; and the :class:`Peers` to close after.
    ``verify``: the TLS context of calls to services (``TlsSettings.client_context()``)."""
    explicit = Peers.from_urls(urls or {}, secret=secret, verify=verify)
    peers: dict[str, httpx.AsyncClient] = {**(given or {}), **explicit}
    missing = [name for name in names if name not in peers]
    if not missing or not registry_url:
        return peers, [explicit]
    found = await Peers.from_registry(
        registry_url, prefix=registry_prefix, names=missing, secret=secret, verify=verify
    )
    return {**found, **peers}, [explicit, found]


async def scan_registry(client: redis.Redis, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Every instance registered under ``prefix``, by service, sorted by instance id."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
    found: dict[str, list[dict[str, Any]]] = {}
    if not keys:
        return found
    for raw in await client.mget(keys):
        if raw is None:
            continue  # expired between the scan and the read
        try:
            entry = json.loads(raw)
            found.setdefault(str(entry["service"]), []).append(entry)
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed registry entry")
    for entries in found.values():
        entries.sort(key=lambda e: str(e.get("id")))
    return found


class RegistryReader:
    """The base URLs of every registered service, read every ``interval`` seconds.

    Redis being unreachable keeps the URLs last read rather than none.
    """

    def __init__(self, url: str, *, prefix: str, interval: float = 1.0) -> None:
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0)
        self.prefix = prefix
        self.interval = interval
        self.urls: dict[str, list[str]] = {}
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read now (a failure is logged, not raised), then every ``interval`` seconds."""
        await self._read_logged()
        self._task = asyncio.create_task(self._read_forever(), name="registry-read")

    async def aclose(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.redis.aclose()

    async def read(self) -> None:
        """Read the registry now."""
        found = await scan_registry(self.redis, self.prefix)
        self.urls = {
            service: [str(e["url"]).rstrip("/") for e in entries if e.get("url")]
            for service, entries in found.items()
        }
        self._read_at = time.monotonic()

    async def instances(self, service: str) -> list[str]:
        """The base URLs of ``service``; none known reads the registry again (rate-limited)."""
        urls = self.urls.get(service)
        if not urls and time.monotonic() - self._read_at >= _RESCAN_SECONDS:
            async with self._lock:
                if time.monotonic() - self._read_at >= _RESCAN_SECONDS:
                    await self._read_logged()
            urls = self.urls.get(service)
        return urls or []

    async def _read_logged(self) -> bool:
        try:
            await self.read()
        except (RedisError, OSError) as exc:
            self._read_at = time.monotonic()
            logger.warning("service registry unreadable, keeping known instances: %s", exc)
            return False
        return True

    async def _read_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.read()
                failing = False
            except (RedisError, OSError) as exc:
                if not failing:
                    logger.warning("service registry unreadable, keeping known instances: %s", exc)
                failing = True


class RegistryTransport(httpx.AsyncBaseTransport):
    """Sends each request to a registered instance of ``service``, in turn; an instance
    that refuses the connection (nothing was sent) passes the request to the next one."""

    def __init__(
        self, registry: RegistryReader, service: str, *, verify: ssl.SSLContext | None = None
    ) -> None:
        self.registry = registry
        self.service = service
        self._inner = httpx.AsyncHTTPTransport(verify=verify or client_context())
        self._turn = itertools.count()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Route ``request`` to an instance (``httpx.ConnectError`` when there is none)."""
        urls = await self.registry.instances(self.service)
        if not urls:
            raise httpx.ConnectError(
                f"no instance of '{self.service}' in the service registry", request=request
            )
        first = next(self._turn)
        path = request.url.raw_path
        candidates = [urls[(first + n) % len(urls)] for n in range(min(len(urls), 2))]
        for url in candidates[:-1]:
            with contextlib.suppress(httpx.ConnectError):
                return await self._send(request, url, path)
        return await self._send(request, candidates[-1], path)

    async def _send(self, request: httpx.Request, url: str, path: bytes) -> httpx.Response:
        target = httpx.URL(url)
        if target.raw_path not in (b"", b"/"):
            path = target.raw_path.rstrip(b"/") + path
        request.url = request.url.copy_with(
            scheme=target.scheme, host=target.host, port=target.port, raw_path=path
        )
        request.headers["host"] = target.netloc.decode("ascii")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._inner.aclose()
