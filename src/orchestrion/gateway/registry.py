"""The service registry, in Redis: services announce themselves, gateways find them.

A service started with ``orchestrion serve`` writes one key per instance,
``<prefix><service>:<instance id>``, holding its description (name, version, base URL,
endpoints, capabilities, health URL, metadata) with a TTL, and rewrites it every third of
the TTL (the heartbeat). A clean stop deletes the key; a crashed instance disappears
when its TTL runs out. Gateways scan the keys every second and hand the instances they
find to the balancer.

Redis being briefly unreachable changes nothing on the gateway: it keeps routing to the
instances it last saw rather than to none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from orchestrion.gateway.balancer import Instance
from orchestrion.kernel.http.peers import scan_registry
from orchestrion.kernel.ids import new_id

logger = logging.getLogger("orchestrion.registry")


@dataclass
class Registration:
    """What an instance says about itself."""

    service: str
    url: str
    id: str = field(default_factory=new_id)
    version: str = ""
    endpoints: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    health_url: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def instance(self) -> Instance:
        """The instance as the balancer sees it."""
        return Instance(
            url=self.url,
            id=self.id,
            version=self.version,
            metadata=self.metadata,
            source="registry",
        )


class Registrar:
    """Keeps one instance's registration alive while the service runs."""

    def __init__(self, url: str, registration: Registration, *, prefix: str, ttl: float) -> None:
        self.redis = redis.Redis.from_url(url)
        self.registration = registration
        self.key = f"{prefix}{registration.service}:{registration.id}"
        self.ttl = ttl
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Registrar:
        await self._beat()
        self._task = asyncio.create_task(self._beat_forever(), name="registry-heartbeat")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.redis.delete(self.key)
        except RedisError as exc:
            logger.warning("could not deregister %s: %s", self.key, exc)
        await self.redis.aclose()

    async def _beat(self) -> None:
        body = json.dumps(asdict(self.registration))
        await self.redis.set(self.key, body, px=int(self.ttl * 1000))

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self._beat()
            except RedisError as exc:
                logger.warning("registry heartbeat failed: %s", exc)


Listener = Callable[[dict[str, list[Instance]]], None]


class RegistryWatcher:
    """Scans the registry and reports the instances of every service when they change."""

    def __init__(
        self, url: str, *, prefix: str, on_change: Listener, interval: float = 1.0
    ) -> None:
        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self.on_change = on_change
        self.interval = interval
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Watch in the background."""
        self._task = asyncio.create_task(self._watch_forever(), name="registry-watch")

    async def aclose(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.redis.aclose()

    async def scan(self) -> dict[str, list[dict[str, Any]]]:
        """Every registered instance, by service."""
        return await scan_registry(self.redis, self.prefix)

    async def refresh(self) -> None:
        """Scan once and report a change."""
        found = await self.scan()
        if found != self.seen:
            self.seen = found
            self.on_change(
                {
                    service: [_registration(e).instance() for e in entries]
                    for service, entries in found.items()
                }
            )

    async def _watch_forever(self) -> None:
        failing = False
        while True:
            try:
                await self.refresh()
                failing = False
            except (RedisError, OSError) as exc:
                if not failing:
                    logger.warning("registry unreachable, keeping known instances: %s", exc)
                failing = True
            await asyncio.sleep(self.interval)


def _registration(entry: dict[str, Any]) -> Registration:
    known = {k: entry[k] for k in Registration.__dataclass_fields__ if k in entry}
    return Registration(**known)


def advertised_url(host: str, port: int, *, scheme: str = "http") -> str:
    """The URL other hosts reach this process at (a wildcard bind advertises the hostname;
    ``scheme`` is ``https`` when the process serves TLS)."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
        host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{scheme}://{host}:{port}"
