"""``orchestrion serve realtime`` on its own, with Redis and without peers configured: it
finds auth through the service registry to verify first-frame tokens, and honours the
revocations auth announces (a logged-out session's socket is closed, its token refused)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
import redis.asyncio as redis
from redis.exceptions import RedisError
from websockets.asyncio.client import connect

from orchestrion.kernel.auth.identity import IDENTITY_HEADER, encode_identity
from orchestrion.kernel.auth.principal import Principal
from tests.fixtures.databases import server_missing
from tests.fixtures.processes import free_port, run_command, spawn, stop, wait_ready
from tests.services.realtime.conftest import REDIS_URL, close_code, recv, send

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

PASSWORD = "standalone-password-1"
SECRET = "standalone-secret-0123456789abcdef"


@dataclass
class Services:
    auth: str
    realtime: str


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    """auth and realtime as processes on one SQLite file and the local Redis."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        server_missing(f"Redis at {REDIS_URL}", exc)
    prefix = f"orn-test:{uuid.uuid4().hex[:12]}:"
    settings = {
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_SECRET_KEY": SECRET,
        "ORCHESTRION_REDIS__URL": REDIS_URL,
        "ORCHESTRION_GATEWAY__REGISTRY_PREFIX": f"{prefix}registry:",
        "ORCHESTRION_AUTH__REVOCATION_KEY": f"{prefix}revoked",
        "ORCHESTRION_REALTIME__REDIS_PREFIX": f"{prefix}rt:",
        "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }
    ports = {"auth": free_port(), "realtime": free_port()}
    processes: list[subprocess.Popen[str]] = []
    try:
        migrated = await asyncio.to_thread(run_command, tmp_path, "db", "upgrade", **settings)
        assert migrated.returncode == 0, migrated.stderr
        for name in ("auth", "realtime"):
            process = spawn(tmp_path, "serve", name, "--port", str(ports[name]), **settings)
            processes.append(process)
            url = f"http://127.0.0.1:{ports[name]}"
            await asyncio.to_thread(wait_ready, url, process, 60, "/health")
        yield Services(*(f"127.0.0.1:{ports[name]}" for name in ("auth", "realtime")))
    finally:
        for process in processes:
            if process.poll() is None:
                print(stop(process)[-3000:])
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_first_frame_tokens_are_verified_through_the_registry(services: Services) -> None:
    async with httpx.AsyncClient(base_url=f"http://{services.auth}", timeout=10) as http:
        login = await http.post(
            "/api/v1/auth/login", json={"email": "admin@orchestrion.local", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        ws_url = f"ws://{services.realtime}/ws"
        async with connect(ws_url) as ws:
            await send(ws, type="auth", token=token, ref="a")
            welcome = await recv(ws)
            assert welcome["type"] == "welcome", welcome
            await send(ws, type="subscribe", channel="tenant")
            assert (await recv(ws))["type"] == "subscribed"

            # Log out at auth (as the gateway would forward it): the open socket closes,
            # and the token no longer opens one.
            claims = jwt.decode(token, options={"verify_signature": False})
            principal = Principal(
                subject=claims["sub"], tenant_id=claims["tid"], session_id=claims["sid"]
            )
            identity = encode_identity(principal, SECRET.encode())
            out = await http.post("/api/v1/auth/logout", headers={IDENTITY_HEADER: identity})
            assert out.status_code == 204, out.text
            assert await close_code(ws) == 4401
        async with connect(ws_url) as ws:
            await send(ws, type="auth", token=token)
            assert await close_code(ws) == 4401
