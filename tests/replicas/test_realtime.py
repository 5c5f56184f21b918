"""Realtime instances as processes (issue 21): each reports Redis in ``/health`` (503
while it is down); an instance whose pub/sub connection to Redis came back backfills,
from the channel's history, what was published meanwhile, without a gap or a duplicate;
a socket closes with 4401 at its token's expiry unless a fresh ``auth`` frame renews it.

The Redis of the reconnect test is the test's own process (never the shared one), with
an append-only file synced on every write: killed and restarted, it keeps the channels'
seqs and history, which the backfill reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from redis.exceptions import RedisError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from orchestrion.kernel.auth.identity import IDENTITY_HEADER, encode_identity
from orchestrion.kernel.auth.principal import Principal
from tests.fixtures.processes import free_port
from tests.replicas.conftest import ADMIN_EMAIL, PASSWORD, Replicas

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

SECRET = "replicas-realtime-secret-0123456789"
DEADLINE = 60.0  # seconds any awaited condition gets before the test fails


class OwnRedis:
    """A ``redis-server`` of this test alone, on a free port, killed and restarted at will."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.home = home
        self.process: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.home.mkdir(parents=True, exist_ok=True)
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "save": "",
            "appendonly": "yes",
            "appendfsync": "always",
            "dir": str(self.home),
        }
        command = ["redis-server", *(part for k, v in options.items() for part in (f"--{k}", v))]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def start(self) -> None:
        """Start (or restart, on the same port and files) and wait until it answers."""
        self.process = self._spawn()
        client = redis.Redis.from_url(self.url)
        try:
            await until(lambda: _pings(client), "the test's Redis answers")
        finally:
            await client.aclose()

    def kill(self) -> None:
        """SIGKILL it (by its PID) and reap it."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=DEADLINE)


async def _pings(client: redis.Redis) -> bool:
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds; fail after :data:`DEADLINE`."""
    deadline = time.monotonic() + DEADLINE
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.1)


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    """The test's own Redis, stopped after."""
    server = OwnRedis(tmp_path / "redis")
    await server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


async def recv(ws: ClientConnection) -> dict[str, Any]:
    """The next frame, decoded."""
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
    return frame


async def send(ws: ClientConnection, **frame: Any) -> None:
    """Send one frame."""
    await ws.send(json.dumps(frame))


async def close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; the code it closed with."""
    async with asyncio.timeout(DEADLINE):
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass
    return ws.close_code


def as_user(user: str) -> dict[str, str]:
    """The identity header a gateway would set for ``user`` (may read and publish)."""
    principal = Principal(
        subject=user,
        tenant_id="t1",
        permissions=frozenset({"executions:read", "workflows:write"}),
    )
    return {IDENTITY_HEADER: encode_identity(principal, SECRET.encode())}


async def health(url: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        return await http.get("/health")


async def health_is(url: str, status: int) -> bool:
    try:
        return (await health(url)).status_code == status
    except httpx.HTTPError:
        return False


@pytest.mark.postgres
async def test_instances_report_redis_and_backfill_what_a_reconnect_missed(
    replicas: Replicas, own_redis: OwnRedis
) -> None:
    replicas.settings.update(
        ORCHESTRION_SECRET_KEY=SECRET,
        ORCHESTRION_REDIS__URL=own_redis.url,
        ORCHESTRION_REALTIME__REDIS_PREFIX=f"rt-{uuid.uuid4().hex[:8]}:",
        # The reader's instance is paused below: its sockets must outlive the pause.
        ORCHESTRION_REALTIME__HEARTBEAT_TIMEOUT_SECONDS="600",
    )
    writer_url = await replicas.serve("realtime-1", "realtime")
    reader_url = await replicas.serve("realtime-2", "realtime")
    for url in (writer_url, reader_url):
        answer = await health(url)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["database"] == "ok"
        assert body["redis"]["status"] == "up", body
        assert body["redis"]["latency_ms"] >= 0

    ws_url = "ws://127.0.0.1:{}/ws"
    reader_port, writer_port = replicas.ports["realtime-2"], replicas.ports["realtime-1"]
    async with (
        connect(ws_url.format(reader_port), additional_headers=as_user("ann"), ping_interval=None)
        as reader,
        connect(ws_url.format(writer_port), additional_headers=as_user("bob"), ping_interval=None)
        as writer,
    ):  # fmt: skip
        assert (await recv(reader))["type"] == "welcome"
        assert (await recv(writer))["type"] == "welcome"
        await send(reader, type="subscribe", channel="room:r", ref="s")
        assert (await recv(reader))["type"] == "subscribed"

        async def publish(text: str) -> int:
            # As a client would, send again a frame that failed (the first command on a
            # connection pooled before the restart does).
            deadline = time.monotonic() + DEADLINE
            while True:
                await send(writer, type="publish", channel="room:r", data={"text": text}, ref=text)
                answer = await recv(writer)
                if answer["type"] == "message":
                    return int(answer["seq"])
                assert answer["code"] == "internal", answer
                assert time.monotonic() < deadline, answer
                await asyncio.sleep(0.1)

        first = await publish("m1")
        assert (await recv(reader))["seq"] == first

        # The reader's instance sleeps through a Redis crash and restart; meanwhile the
        # writer's instance sees Redis down (503), then up again, and publishes twice.
        reader_process = replicas.processes["realtime-2"]
        os.kill(reader_process.pid, signal.SIGSTOP)
        try:
            own_redis.kill()
            await until(lambda: health_is(writer_url, 503), "the writer's instance reports 503")
            down = (await health(writer_url)).json()
            assert down["redis"]["status"] == "down", down
            assert "redis" in down["detail"], down
            await own_redis.start()
            await until(lambda: health_is(writer_url, 200), "the writer's instance is ready again")
            missed = [await publish("m2"), await publish("m3")]
            assert missed == [first + 1, first + 2]
        finally:
            os.kill(reader_process.pid, signal.SIGCONT)

        # Back, the reader's instance reconnects and backfills m2 and m3 from history,
        # then goes on live: every message once, in order, no gap.
        live = await publish("m4")
        frames = [await recv(reader) for _ in range(3)]
        assert [(f["type"], f["seq"], f["data"]["text"]) for f in frames] == [
            ("message", first + 1, "m2"),
            ("message", first + 2, "m3"),
            ("message", live, "m4"),
        ], frames
        await send(reader, type="ping", ref="p")
        assert await recv(reader) == {"type": "pong", "ref": "p"}  # nothing else came
    await until(lambda: health_is(reader_url, 200), "the reader's instance is ready again")


def _exp(welcome: dict[str, Any]) -> float:
    return datetime.fromisoformat(welcome["expires_at"]).timestamp()


@pytest.mark.postgres
async def test_a_socket_closes_at_its_token_expiry_unless_a_fresh_auth_frame_renews_it(
    replicas: Replicas,
) -> None:
    replicas.settings.update(
        ORCHESTRION_SECRET_KEY=SECRET, ORCHESTRION_AUTH__ACCESS_TOKEN_TTL_SECONDS="8"
    )
    auth_url = await replicas.serve("auth", "auth")
    realtime_url = await replicas.serve(
        "realtime", "realtime", ORCHESTRION_PEERS=json.dumps({"auth": auth_url})
    )
    ws_url = realtime_url.replace("http://", "ws://") + "/ws"

    async with httpx.AsyncClient(base_url=auth_url, timeout=30) as http:

        async def login() -> str:
            answer = await http.post(
                "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD}
            )
            assert answer.status_code == 200, answer.text
            token: str = answer.json()["access_token"]
            return token

        first = await login()
        async with (
            connect(ws_url, ping_interval=None) as kept,
            connect(ws_url, ping_interval=None) as renewed,
        ):
            welcomes = []
            for ws in (kept, renewed):
                await send(ws, type="auth", token=first)
                welcomes.append(await recv(ws))
            assert [w["type"] for w in welcomes] == ["welcome", "welcome"], welcomes
            expiry = _exp(welcomes[0])

            # A token that is not one is refused, and the socket keeps its credential.
            await send(renewed, type="auth", token="not-a-token", ref="bad")
            refused = await recv(renewed)
            assert (refused["type"], refused["code"], refused["ref"]) == (
                "error",
                "unauthenticated",
                "bad",
            ), refused

            await asyncio.sleep(1.5)  # so that the fresh token expires a second later at least
            await send(renewed, type="auth", token=await login(), ref="renew")
            renewal = await recv(renewed)
            assert (renewal["type"], renewal["ref"]) == ("welcome", "renew"), renewal
            assert renewal["connection_id"] == welcomes[1]["connection_id"]
            assert _exp(renewal) > expiry

            assert await close_code(kept) == 4401
            await asyncio.sleep(max(0.0, expiry + 0.5 - time.time()))
            await send(renewed, type="ping", ref="alive")
            assert await recv(renewed) == {"type": "pong", "ref": "alive"}
            assert await close_code(renewed) == 4401
            assert time.time() >= _exp(renewal) - 1  # closed at its own token's expiry
