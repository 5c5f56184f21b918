"""The gateway's policies against the real platform, in memory and on the local Redis.

``open_gateway`` starts the embedded platform (its own copy of the SQLite template) with
gateway and Redis settings of the test's choosing; ``shared_redis`` gives each test its
own key prefix on the local Redis and removes its keys afterwards.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrion.gateway.routes import Route
from orchestrion.platform import create_embedded_app
from tests.conftest import make_settings
from tests.fixtures.databases import copy_template, server_missing
from tests.fixtures.lifespan import in_process

REDIS_URL = os.environ.get("ORCHESTRION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLIENT = ("10.0.0.1", 40000)


@dataclass
class SharedRedis:
    """The test's Redis URL and key prefixes."""

    url: str
    prefix: str
    client: Redis

    def gateway(self, **gateway: Any) -> dict[str, Any]:
        """Settings overrides that put both policies (and revocation notices) on this Redis
        under the prefix."""
        return {
            "redis": {"url": self.url},
            "realtime": {"redis_url": ""},  # realtime stays in memory: not under test here
            "auth": {"revocation_key": f"{self.prefix}revoked"},
            "gateway": {
                "rate_limit_prefix": f"{self.prefix}rl:",
                "cache_prefix": f"{self.prefix}cache:",
                **gateway,
            },
        }

    async def keys(self, pattern: str = "*") -> list[bytes]:
        """The test's keys matching ``pattern`` (after the prefix)."""
        return [k async for k in self.client.scan_iter(match=f"{self.prefix}{pattern}")]


@pytest.fixture
async def shared_redis() -> AsyncIterator[SharedRedis]:
    """The local Redis with a prefix of this test's own."""
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        server_missing(f"Redis at {REDIS_URL}", exc)
    shared = SharedRedis(REDIS_URL, f"orn-test:{uuid.uuid4().hex[:12]}:", client)
    try:
        yield shared
    finally:
        keys = await shared.keys()
        if keys:
            await client.delete(*keys)
        await client.aclose()


@contextlib.asynccontextmanager
async def open_gateway(
    directory: Path,
    template: Path,
    *,
    routes: list[Route] | None = None,
    client: tuple[str, int] = CLIENT,
    **overrides: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """The embedded platform in ``directory``; a client calling from ``client``."""
    database = copy_template(template, directory / "data")
    settings = make_settings(directory, f"sqlite+aiosqlite:///{database}", **overrides)
    app = create_embedded_app(settings, routes=routes)
    async with in_process(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def from_ip(http: httpx.AsyncClient, ip: str) -> httpx.AsyncClient:
    """A client of the same gateway calling from another address."""
    app = http._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")
