"""The gateway in front of real service processes on PostgreSQL, found through the Redis
registry: failover under steady traffic, the circuit breaker, hot reload, the admin API."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis

from tests.fixtures.databases import PG_HOST, PG_PORT, PG_USER, _admin, in_thread, server_missing
from tests.fixtures.processes import (
    free_block,
    free_port,
    kill,
    run_command,
    spawn,
    stop,
    stop_all,
    wait_ready,
)

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

PASSWORD = "gateway-cluster-password-1"
REDIS_URL = "redis://127.0.0.1:6379/0"
CONFIG = """
upstreams:
  workflows:
    balancing: {balancing}
    retries: 2
    health: {{path: /health/live, interval: 0.5, timeout: 0.5}}
    breaker: {{failure_threshold: 3, open_seconds: 1.5}}
    outlier: {{consecutive_failures: 2, eject_seconds: 5}}
routes:
  - prefix: /legacy-workflows
    service: workflows
    permission: workflows:read
    rewrite: /api/v1/workflows
    response_headers: {{set: {{X-Route: legacy}}}}
"""


@dataclass
class Cluster:
    home: Path
    settings: dict[str, str]
    ports: dict[str, int]
    config: Path
    processes: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def start_workflows(self, name: str) -> None:
        port = str(self.ports[name])
        self.processes[name] = spawn(
            self.home, "serve", "workflows", "--port", port, **self.settings
        )
        wait_ready(f"http://127.0.0.1:{port}", self.processes[name], 60, "/health")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    try:
        client = redis.Redis.from_url(REDIS_URL)
        await client.ping()
        await client.aclose()
    except (OSError, redis.RedisError) as exc:
        server_missing("Redis at 127.0.0.1:6379", exc)
    name = f"orchestrion_gw_{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.to_thread(in_thread, asyncio.run, _admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        server_missing("PostgreSQL", exc)
    ports = {s: free_port() for s in ("gateway", "auth", "wf1", "wf2")}
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG.format(balancing="round_robin"))
    settings = {
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_DATABASE__URL": f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}",
        "ORCHESTRION_ENGINE__EMBEDDED_WORKERS": "false",
        "ORCHESTRION_REDIS__URL": REDIS_URL,
        "ORCHESTRION_GATEWAY__REGISTRY_PREFIX": f"orn:test:{uuid.uuid4().hex[:8]}:",
        "ORCHESTRION_GATEWAY__REGISTRY_TTL_SECONDS": "3",
        "ORCHESTRION_GATEWAY__RATE_LIMIT": "",
        "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }
    running = Cluster(tmp_path, settings, ports, config)
    try:
        migrated = await asyncio.to_thread(run_command, tmp_path, "db", "upgrade", **settings)
        assert migrated.returncode == 0, migrated.stderr
        auth_url = f"http://127.0.0.1:{ports['auth']}"
        running.processes["auth"] = spawn(
            tmp_path, "serve", "auth", "--port", str(ports["auth"]), **settings
        )
        await asyncio.to_thread(wait_ready, auth_url, running.processes["auth"], 60, "/health")
        for instance in ("wf1", "wf2"):
            await asyncio.to_thread(running.start_workflows, instance)
        running.processes["gateway"] = spawn(
            tmp_path, "gateway", "--port", str(ports["gateway"]),
            f"--upstream=auth={auth_url}", f"--config={config}", **settings,
        )  # fmt: skip
        await asyncio.to_thread(wait_ready, running.base, running.processes["gateway"], 60)
        yield running
    finally:
        try:
            stop_all(running.processes.values())
        finally:
            in_thread(asyncio.run, _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _token(http: httpx.AsyncClient) -> dict[str, str]:
    login = await http.post(
        "/api/v1/auth/login", json={"email": "admin@orchestrion.local", "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _until_both_registered(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        listed = await http.get("/admin/upstreams", headers=headers)
        assert listed.status_code == 200, listed.text
        workflows = [u for u in listed.json()["data"] if u["name"] == "workflows"]
        if workflows and len(workflows[0]["instances"]) == 2:
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"the gateway never saw two workflows instances: {listed.text}")


async def _traffic(
    http: httpx.AsyncClient, headers: dict[str, str], stop_at: asyncio.Event, seen: Counter[int]
) -> None:
    while not stop_at.is_set():
        response = await http.get("/api/v1/workflows", headers=headers)
        seen[response.status_code] += 1
        if response.status_code != 200:
            seen[-1] += 1
            print("failed:", response.status_code, response.text[:300])


@pytest.mark.postgres
async def test_failover_breaker_and_recovery(cluster: Cluster) -> None:
    async with httpx.AsyncClient(base_url=cluster.base, timeout=15) as http:
        headers = await _token(http)
        await _until_both_registered(http, headers)

        # Kill one of two instances under steady traffic: no request fails.
        stop_at = asyncio.Event()
        seen: Counter[int] = Counter()
        clients = [asyncio.create_task(_traffic(http, headers, stop_at, seen)) for _ in range(4)]
        await asyncio.sleep(1.5)
        kill(cluster.processes["wf1"])
        await asyncio.sleep(3.0)
        stop_at.set()
        await asyncio.gather(*clients)
        assert seen[200] > 20, seen
        assert set(seen) == {200}, seen

        # Kill the other: failures open the breaker, which then answers at once.
        kill(cluster.processes["wf2"])
        statuses = []
        for _ in range(8):
            response = await http.get("/api/v1/workflows", headers=headers)
            statuses.append(response.status_code)
        assert set(statuses) == {503}, statuses
        started = time.perf_counter()
        fast = await http.get("/api/v1/workflows", headers=headers)
        elapsed = time.perf_counter() - started
        assert fast.status_code == 503
        assert "circuit breaker" in fast.json()["detail"]
        assert int(fast.headers["Retry-After"]) >= 1
        assert elapsed < 0.5, elapsed  # refused without trying the dead instances
        health = (await http.get("/health")).json()
        assert health["services"]["workflows"]["gateway"]["breaker"] == "open"
        assert health["services"]["workflows"]["status"] == "down"

        # Restarting one instance closes the breaker again.
        await asyncio.to_thread(cluster.start_workflows, "wf2")
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline:
            status = (await http.get("/api/v1/workflows", headers=headers)).status_code
            if status == 200:
                break
            await asyncio.sleep(0.3)
        assert status == 200
        health = (await http.get("/health")).json()
        assert health["services"]["workflows"]["gateway"]["breaker"] == "closed"
        metrics = (await http.get("/metrics")).text
        assert 'orchestrion_gateway_breaker_opened{upstream="workflows"}' in metrics
        assert 'orchestrion_gateway_upstream_retries_total{upstream="workflows"}' in metrics


@pytest.mark.postgres
async def test_admin_api_drain_weights_and_hot_reload(cluster: Cluster) -> None:
    async with httpx.AsyncClient(base_url=cluster.base, timeout=15) as http:
        headers = await _token(http)
        await _until_both_registered(http, headers)

        # The config's route: prefix rewritten, response header set, permission enforced.
        legacy = await http.get("/legacy-workflows", headers=headers)
        assert legacy.status_code == 200, legacy.text
        assert legacy.headers["X-Route"] == "legacy"
        assert "data" in legacy.json()
        assert (await http.get("/legacy-workflows")).status_code == 401

        # Drain one instance: every request goes to the other.
        listed = (await http.get("/admin/upstreams", headers=headers)).json()["data"]
        instances = next(u for u in listed if u["name"] == "workflows")["instances"]
        drained, other = instances[0], instances[1]
        response = await http.post(
            f"/admin/upstreams/workflows/instances/{drained['id']}/drain", headers=headers
        )
        assert response.status_code == 200
        assert response.json()["draining"] is True
        for _ in range(6):
            assert (await http.get("/api/v1/workflows", headers=headers)).status_code == 200
        listed = (await http.get("/admin/upstreams", headers=headers)).json()["data"]
        by_id = {
            i["id"]: i for i in next(u for u in listed if u["name"] == "workflows")["instances"]
        }
        assert by_id[drained["id"]]["draining"] is True
        assert by_id[other["id"]]["draining"] is False

        # Bad admin input is a 400 problem; non-admins are refused.
        bad = await http.patch(
            f"/admin/upstreams/workflows/instances/{other['id']}",
            json={"weight": -1},
            headers=headers,
        )
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert (await http.get("/admin/upstreams")).status_code == 401

        # Hot reload: a new route appears without a restart; a broken file changes nothing.
        cluster.config.write_text(
            CONFIG.format(balancing="least_outstanding")
            + "  - prefix: /v0/workflows\n    service: workflows\n    public: false\n"
            "    permission: workflows:read\n    rewrite: /api/v1/workflows\n"
        )
        reloaded = await http.post("/admin/reload", headers=headers)
        assert reloaded.status_code == 200, reloaded.text
        assert (await http.get("/v0/workflows", headers=headers)).status_code == 200
        cluster.config.write_text("upstreams: [not, a, mapping")
        await asyncio.sleep(2.5)  # the watcher looks every second
        assert (await http.get("/v0/workflows", headers=headers)).status_code == 200
        listed = (await http.get("/admin/upstreams", headers=headers)).json()["data"]
        assert next(u for u in listed if u["name"] == "workflows")["balancing"] == (
            "least_outstanding"
        )

        # The composite endpoint merges parts and says which failed (none here).
        dashboard = await http.get("/api/v1/dashboard", headers=headers)
        assert dashboard.status_code == 200, dashboard.text
        body = dashboard.json()
        assert body["partial"] is False
        assert body["data"]["me"]["email"] == "admin@orchestrion.local"
        assert "data" in body["data"]["workflows"]


@pytest.mark.postgres
async def test_cluster_up_runs_every_process_and_stops_them(tmp_path: Path) -> None:
    name = f"orchestrion_cl_{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.to_thread(in_thread, asyncio.run, _admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        server_missing("PostgreSQL", exc)
    # The gateway and every service on the ports after it, out of free_port's range: a
    # port another test picks meanwhile cannot be one of them.
    port = free_block(12)
    settings = {
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_DATABASE__URL": f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}",
        "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
        "ORCHESTRION_ENGINE__POLL_SECONDS": "0.2",
    }
    process = spawn(
        tmp_path, "cluster", "up", "--port", str(port), "--workers", "1",
        "--instances", "workflows=2", **settings,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        # Eleven processes start at once: minutes on a loaded machine.
        await asyncio.to_thread(wait_ready, base, process, 200, "/health/ready")
        async with httpx.AsyncClient(base_url=base, timeout=15) as http:
            headers = await _token(http)
            definition = {
                "name": "clustered",
                "steps": [{"id": "pause", "type": "delay", "with": {"seconds": 0.1}}],
            }
            workflow = await http.post("/api/v1/workflows", json=definition, headers=headers)
            assert workflow.status_code == 201, workflow.text
            # A delay needs the queue: only the worker process can finish it.
            run = await http.post(
                f"/api/v1/workflows/{workflow.json()['id']}/executions?wait=30",
                json={},
                headers=headers,
            )
            assert run.json()["status"] == "succeeded", run.text
            listed = (await http.get("/admin/upstreams", headers=headers)).json()["data"]
            workflows = next(u for u in listed if u["name"] == "workflows")
            assert len(workflows["instances"]) == 2
    finally:
        output = stop(process)
        in_thread(asyncio.run, _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert process.returncode == 0, output[-3000:]
    for offset in range(11):  # every child is gone: its port is free again
        assert not _taken(port + offset), output[-3000:]


def _taken(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
