"""Revocation across gateway processes: two ``orchestrion gateway`` processes on one Redis
in front of ``orchestrion serve auth`` and ``orchestrion serve workflows`` (PostgreSQL),
every one found through the registry. A credential revoked through gateway A is refused
by gateway B within a second, although B had verified and cached it just before."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis

from tests.fixtures.databases import PG_HOST, PG_PORT, PG_USER, _admin, in_thread, server_missing
from tests.fixtures.processes import free_port, run_command, spawn, stop_all, wait_ready

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

PASSWORD = "revocation-cluster-password-1"
REDIS_URL = "redis://127.0.0.1:6379/0"
WORKFLOWS = "/api/v1/workflows"
AUTH = "/api/v1/auth"
WITHIN = 1.0  # seconds a revocation may take to reach another gateway


@dataclass
class Cluster:
    gateways: list[str]
    took: dict[str, float] = field(default_factory=dict)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, redis.RedisError) as exc:
        await client.aclose()
        server_missing("Redis at 127.0.0.1:6379", exc)
    name = f"orchestrion_rev_{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.to_thread(in_thread, asyncio.run, _admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        await client.aclose()
        server_missing("PostgreSQL", exc)
    prefix = f"orn-test:{uuid.uuid4().hex[:8]}:"
    settings = {
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_DATABASE__URL": f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}",
        "ORCHESTRION_ENGINE__EMBEDDED_WORKERS": "false",
        "ORCHESTRION_REDIS__URL": REDIS_URL,
        "ORCHESTRION_GATEWAY__REGISTRY_PREFIX": f"{prefix}registry:",
        "ORCHESTRION_GATEWAY__RATE_LIMIT": "",
        "ORCHESTRION_GATEWAY__RATE_LIMIT_PREFIX": f"{prefix}rl:",
        "ORCHESTRION_GATEWAY__CACHE_PREFIX": f"{prefix}cache:",
        "ORCHESTRION_AUTH__REVOCATION_KEY": f"{prefix}revoked",
        "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }
    processes: dict[str, subprocess.Popen[str]] = {}
    try:
        migrated = await asyncio.to_thread(run_command, tmp_path, "db", "upgrade", **settings)
        assert migrated.returncode == 0, migrated.stderr
        for service in ("auth", "workflows"):
            port = free_port()
            processes[service] = spawn(tmp_path, "serve", service, "--port", str(port), **settings)
            await asyncio.to_thread(
                wait_ready, f"http://127.0.0.1:{port}", processes[service], 60, "/health"
            )
        gateways = []
        for gateway in ("gateway-a", "gateway-b"):
            port = free_port()
            processes[gateway] = spawn(tmp_path, "gateway", "--port", str(port), **settings)
            gateways.append(f"http://127.0.0.1:{port}")
            await asyncio.to_thread(wait_ready, gateways[-1], processes[gateway], 60)
        yield Cluster(gateways)
    finally:
        try:
            stop_all(processes.values())
        finally:
            in_thread(asyncio.run, _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def _login(http: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    """Log in (retrying while the gateway has not yet found auth in the registry)."""
    deadline = time.monotonic() + 20
    while True:
        response = await http.post(f"{AUTH}/login", json={"email": email, "password": password})
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _until_served(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """Wait until the gateway has found the workflows service in the registry."""
    deadline = time.monotonic() + 20
    while (status := (await http.get(WORKFLOWS, headers=headers)).status_code) != 200:
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)


async def _refused_within(
    cluster: Cluster, what: str, http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """Poll until ``headers`` get 401 (at most ``WITHIN`` seconds) and record how long."""
    started = time.perf_counter()
    while True:
        status = (await http.get(WORKFLOWS, headers=headers)).status_code
        took = time.perf_counter() - started
        if status == 401:
            cluster.took[what] = took
            return
        assert status == 200, status
        assert took < WITHIN, f"{what}: still accepted after {took:.3f} s"
        await asyncio.sleep(0.01)


@pytest.mark.postgres
async def test_revocations_through_one_gateway_reach_the_other(cluster: Cluster) -> None:
    base_a, base_b = cluster.gateways
    async with (
        httpx.AsyncClient(base_url=base_a, timeout=15) as a,
        httpx.AsyncClient(base_url=base_b, timeout=15) as b,
    ):
        admin = await _login(a, "admin@orchestrion.local", PASSWORD)
        for http in (a, b):
            await _until_served(http, admin)

        # An API key, verified (and cached) by both gateways, deleted through A.
        created = await a.post(
            f"{AUTH}/api-keys", json={"name": "k", "scopes": ["workflows:read"]}, headers=admin
        )
        assert created.status_code == 201, created.text
        key = {"X-API-Key": created.json()["key"]}
        for http in (a, b):
            assert (await http.get(WORKFLOWS, headers=key)).status_code == 200
        deleted = await a.delete(f"{AUTH}/api-keys/{created.json()['id']}", headers=admin)
        assert deleted.status_code == 204
        await _refused_within(cluster, "api key deleted, gateway B", b, key)
        await _refused_within(cluster, "api key deleted, gateway A", a, key)

        # A user's session, used through both gateways, logged out through A.
        user = await a.post(
            f"{AUTH}/users",
            json={"email": "u@example.com", "password": "user-password-1", "roles": ["editor"]},
            headers=admin,
        )
        assert user.status_code == 201, user.text
        session = await _login(b, "u@example.com", "user-password-1")
        for http in (a, b):
            assert (await http.get(WORKFLOWS, headers=session)).status_code == 200
        assert (await a.post(f"{AUTH}/logout", headers=session)).status_code == 204
        await _refused_within(cluster, "logout, gateway B", b, session)

        # The same user demoted through A: their new session's token is refused by B.
        session = await _login(b, "u@example.com", "user-password-1")
        assert (await b.get(WORKFLOWS, headers=session)).status_code == 200
        demoted = await a.patch(
            f"{AUTH}/users/{user.json()['id']}", json={"roles": ["viewer"]}, headers=admin
        )
        assert demoted.status_code == 200, demoted.text
        await _refused_within(cluster, "demotion, gateway B", b, session)

    print("time until refused:", {k: f"{v * 1000:.1f} ms" for k, v in cluster.took.items()})
