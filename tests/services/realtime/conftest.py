"""Real servers for the realtime tests: uvicorn on loopback, real WebSocket clients.

``platform`` is the embedded shape behind its gateway (every auth method end to end);
``realtime_server`` starts the realtime service alone, reached with identity headers
signed like the gateway's, with whatever :class:`RealtimeSettings` a test needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.exceptions import RedisError
from websockets.asyncio.client import ClientConnection, connect

from orchestrion.kernel.auth.identity import IDENTITY_HEADER, encode_identity
from orchestrion.kernel.auth.principal import Principal
from orchestrion.platform import create_embedded_app
from orchestrion.services.realtime.app import create_app
from orchestrion.services.realtime.config import RealtimeSettings
from orchestrion.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings
from tests.fixtures.databases import copy_template, server_missing
from tests.fixtures.servers import serve

WAIT = 10.0  # seconds any awaited condition gets before the test fails
SECRET = b"test-secret-key-0123456789abcdef"
REDIS_URL = os.environ.get("ORCHESTRION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def settings_for(tmp_path: Path, template: Path, **realtime: Any) -> Settings:
    """Test settings on a copy of the migrated SQLite template."""
    database = copy_template(template, tmp_path / "data")
    base = make_settings(tmp_path, f"sqlite+aiosqlite:///{database}")
    return base.model_copy(update={"realtime": RealtimeSettings(**realtime)})


#: Publish limits no test that floods a channel reaches (tests of the limits set their own).
UNLIMITED = {
    "publish_rate": 1e6,
    "publish_burst": 1_000_000,
    "user_publish_rate": 1e6,
    "user_publish_burst": 1_000_000,
}

#: What test users hold unless a test says otherwise: read executions, publish.
PERMISSIONS = ("executions:read", "workflows:write")


def identity(
    user: str, *, tenant: str = "t1", permissions: tuple[str, ...] = PERMISSIONS
) -> dict[str, str]:
    """The header the gateway would set for ``user``."""
    principal = Principal(subject=user, tenant_id=tenant, permissions=frozenset(permissions))
    return {IDENTITY_HEADER: encode_identity(principal, SECRET)}


async def recv(ws: ClientConnection) -> dict[str, Any]:
    """The next frame, decoded (fails the test after ``WAIT``)."""
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return frame


async def recv_type(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next frame of type ``kind``, skipping others."""
    while True:
        frame = await recv(ws)
        if frame["type"] == kind:
            return frame


async def close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; the code it closed with."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(WAIT):
            async for _ in ws:
                pass
    await asyncio.wait_for(ws.wait_closed(), WAIT)
    return ws.close_code


async def send(ws: ClientConnection, **frame: Any) -> None:
    """Send one frame."""
    await ws.send(json.dumps(frame))


async def subscribe(ws: ClientConnection, channel: str, **extra: Any) -> dict[str, Any]:
    """Subscribe and return the ``subscribed`` answer."""
    await send(ws, type="subscribe", channel=channel, **extra)
    answer = await recv(ws)
    assert answer["type"] == "subscribed", answer
    return answer


@dataclass
class RealtimeServer:
    """A standalone realtime service under uvicorn."""

    address: str

    def connect(self, user: str, **kwargs: Any) -> Any:
        """A WebSocket to ``/ws`` authenticated as ``user`` by an identity header."""
        tenant = kwargs.pop("tenant", "t1")
        permissions = kwargs.pop("permissions", PERMISSIONS)
        return connect(
            f"ws://{self.address}/ws",
            additional_headers=identity(user, tenant=tenant, permissions=permissions),
            **kwargs,
        )

    async def publish(self, body: dict[str, Any], *, internal: bool = True) -> httpx.Response:
        """``POST /internal/realtime/publish`` as the platform would (or as an outsider)."""
        from orchestrion.kernel.http.peers import internal_headers

        headers = internal_headers(SECRET) if internal else {}
        async with httpx.AsyncClient(base_url=f"http://{self.address}", timeout=60) as http:
            return await http.post("/internal/realtime/publish", json=body, headers=headers)


StartRealtime = Callable[..., Awaitable[RealtimeServer]]


@pytest.fixture
def redis_settings() -> Iterator[dict[str, str]]:
    """Realtime settings on the local Redis under a prefix of its own (its keys removed after)."""
    client = SyncRedis.from_url(REDIS_URL)
    try:
        client.ping()
    except (OSError, RedisError) as exc:
        client.close()
        server_missing(f"Redis at {REDIS_URL}", exc)
    prefix = f"orn:test:{uuid.uuid4().hex[:10]}:"
    try:
        yield {"redis_url": REDIS_URL, "redis_prefix": prefix}
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(params=["memory", "redis"])
def backend_settings(request: pytest.FixtureRequest) -> dict[str, str]:
    """Each realtime backend in turn (what instances started by one test share)."""
    if request.param == "redis":
        shared: dict[str, str] = request.getfixturevalue("redis_settings")
        return shared
    return {}


@pytest.fixture
async def start_realtime(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[StartRealtime]:
    """Start standalone realtime services: ``await start_realtime(**RealtimeSettings)``."""
    async with contextlib.AsyncExitStack() as stack:
        count = 0

        async def start(**realtime: Any) -> RealtimeServer:
            nonlocal count
            count += 1
            settings = settings_for(tmp_path / f"rt{count}", sqlite_template, **realtime)
            address = await stack.enter_async_context(serve(create_app(settings)))
            return RealtimeServer(address)

        yield start


@pytest.fixture
def realtime_server(
    backend_settings: dict[str, str], start_realtime: StartRealtime
) -> StartRealtime:
    """Like ``start_realtime``, once per backend (instances of one test share it)."""

    async def start(**realtime: Any) -> RealtimeServer:
        return await start_realtime(**{**backend_settings, **realtime})

    return start


@dataclass
class Platform:
    """The embedded platform under uvicorn, and an HTTP client to its gateway."""

    address: str
    http: httpx.AsyncClient
    admin_token: str

    @property
    def ws_url(self) -> str:
        """The gateway's socket URL."""
        return f"ws://{self.address}/ws"


@pytest.fixture
async def platform(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Platform]:
    """The whole platform on a loopback port, with the bootstrap admin logged in."""
    settings = settings_for(tmp_path, sqlite_template, auth_timeout_seconds=1.0)
    async with open_platform(settings) as running:
        yield running


@contextlib.asynccontextmanager
async def open_platform(settings: Settings) -> AsyncIterator[Platform]:
    """The embedded platform with ``settings`` under uvicorn, the admin logged in."""
    async with contextlib.AsyncExitStack() as stack:
        address = await stack.enter_async_context(serve(create_embedded_app(settings)))
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://{address}", timeout=WAIT)
        )
        login = await http.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        yield Platform(address, http, login.json()["access_token"])
