"""The distributed shape: ``orchestrion serve flags`` as its own process behind
``orchestrion gateway`` (next to ``serve auth``), publishing on a Redis bus, and an
OpenFeature provider in this process whose cache a change empties at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from openfeature import api
from openfeature.flag_evaluation import Reason

from orchestrion.kernel.bus import open_bus
from orchestrion.services.flags.openfeature import OrchestrionProvider
from tests.fixtures.brokers import own_broker, running
from tests.fixtures.processes import free_port, run_command, spawn, stop, wait_ready

pytestmark = pytest.mark.timeout(300)
PASSWORD = "flags-password-1"
SERVED = ("auth", "flags")


async def test_serve_flags_and_a_provider_hears_changes_over_the_bus(tmp_path: Path) -> None:
    broker, bus_url = own_broker("redis", tmp_path / "redis")
    ports = {name: free_port() for name in ("gateway", *SERVED)}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    settings = {
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
        "ORCHESTRION_BUS__URL": bus_url,
    }
    with running(broker):
        migrated = await asyncio.to_thread(run_command, tmp_path, "db", "upgrade", **settings)
        assert migrated.returncode == 0, migrated.stderr
        processes = [
            spawn(tmp_path, "serve", name, "--port", str(ports[name]), **settings)
            for name in SERVED
        ]
        upstreams = [f"--upstream={name}={url[name]}" for name in SERVED]
        processes.append(
            spawn(tmp_path, "gateway", "--port", str(ports["gateway"]), *upstreams, **settings)
        )
        bus = open_bus(bus_url)
        try:
            for name, process in zip((*SERVED, "gateway"), processes, strict=True):
                path = "/health/live" if name == "gateway" else "/health"
                await asyncio.to_thread(wait_ready, url[name], process, 120, path)
            await bus.start()
            async with httpx.AsyncClient(base_url=url["gateway"], timeout=30) as http:
                login = await http.post(
                    "/api/v1/auth/login",
                    json={"email": "admin@orchestrion.local", "password": PASSWORD},
                )
                assert login.status_code == 200, login.text
                token = login.json()["access_token"]
                auth = {"Authorization": f"Bearer {token}"}
                body = {"key": "beta", "enabled": True, "rollout": 100}
                assert (
                    await http.post("/api/v1/flags", json=body, headers=auth)
                ).status_code == 201
                provider = OrchestrionProvider(url["gateway"], token=token, ttl=600)
                await provider.listen(bus)
                try:
                    api.set_provider(provider)
                    flags = api.get_client()
                    assert await flags.get_boolean_value_async("beta", False) is True
                    cached = await flags.get_boolean_details_async("beta", False)
                    assert (cached.value, cached.reason) == (True, Reason.CACHED)
                    killed = await http.patch(
                        "/api/v1/flags/beta", json={"enabled": False}, headers=auth
                    )
                    assert killed.status_code == 200
                    # The flags process's event reaches this process: no waiting for the TTL.
                    for _ in range(200):
                        answer = await flags.get_boolean_details_async("beta", True)
                        if answer.reason != Reason.CACHED:
                            break
                        await asyncio.sleep(0.05)
                    assert (answer.value, answer.reason) == (False, "DISABLED")
                finally:
                    await provider.aclose()
                    api.clear_providers()
        finally:
            await bus.close()
            for process in reversed(processes):
                await asyncio.to_thread(stop, process)
