"""The distributed shape as separate processes: gateway, auth, workflows, realtime and a
worker on PostgreSQL, joined by a broker. A socket on the gateway sees, live, the
events of an execution that the worker process runs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.fixtures.databases import PG_HOST, PG_PORT, PG_USER, _admin, in_thread
from tests.fixtures.processes import free_port, run_command, spawn, stop_all, wait_ready
from tests.kernel.bus.conftest import process_broker_url

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

PASSWORD = "distributed-password-1"


@pytest.mark.postgres
@pytest.mark.parametrize(
    "broker", ["rabbitmq", "nats", "redis", pytest.param("kafka", marks=pytest.mark.kafka)]
)
async def test_separate_processes_stream_an_execution_through_the_broker(
    broker: str, tmp_path: Path, postgres_url: str, request: pytest.FixtureRequest
) -> None:
    name = f"orchestrion_dist_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(in_thread, asyncio.run, _admin(f'CREATE DATABASE "{name}"'))
    ports = {service: free_port() for service in ("gateway", "auth", "workflows", "realtime")}
    url = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
    settings = {
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_DATABASE__URL": f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}",
        "ORCHESTRION_BUS__URL": process_broker_url(request, broker),
        # Concurrent runs on one broker must not share a group (they would split events).
        "ORCHESTRION_REALTIME__BUS_GROUP": f"realtime-{uuid.uuid4().hex[:8]}",
        "ORCHESTRION_ENGINE__EMBEDDED_WORKERS": "false",
        "ORCHESTRION_ENGINE__POLL_SECONDS": "0.2",
        "ORCHESTRION_REALTIME__PEERS": json.dumps(
            {"auth": url["auth"], "workflows": url["workflows"]}
        ),
        "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }
    processes: list[subprocess.Popen[str]] = []
    try:
        migrated = await asyncio.to_thread(run_command, tmp_path, "db", "upgrade", **settings)
        assert migrated.returncode == 0, migrated.stderr
        for service in ("auth", "workflows", "realtime"):
            port = str(ports[service])
            processes.append(spawn(tmp_path, "serve", service, "--port", port, **settings))
        upstreams = [f"--upstream={s}={url[s]}" for s in ("auth", "workflows", "realtime")]
        processes.append(
            spawn(tmp_path, "gateway", "--port", str(ports["gateway"]), *upstreams, **settings)
        )
        processes.append(spawn(tmp_path, "worker", **settings))
        for service, process in zip(
            ("auth", "workflows", "realtime", "gateway"), processes, strict=False
        ):
            path = "/health/live" if service == "gateway" else "/health"
            await asyncio.to_thread(wait_ready, url[service], process, 120, path)
        await _run_and_watch(url["gateway"], ports["gateway"])
    finally:
        try:
            stop_all(processes, tail=2000)
        finally:
            in_thread(asyncio.run, _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _run_and_watch(base: str, port: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=15) as http:
        login = await http.post(
            "/api/v1/auth/login", json={"email": "admin@orchestrion.local", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        health = await http.get("/health")
        assert health.json()["status"] == "ok", health.text
        definition = {
            "name": "far-away",
            "steps": [
                {"id": "gate", "type": "approval", "with": {}},
                {"id": "done", "type": "transform", "needs": ["gate"], "with": {"v": 1}},
            ],
        }
        workflow = await http.post("/api/v1/workflows", json=definition, headers=auth)
        assert workflow.status_code == 201, workflow.text
        started = await http.post(
            f"/api/v1/workflows/{workflow.json()['id']}/executions", json={}, headers=auth
        )
        execution_id = started.json()["id"]
        async with connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["bearer", token]) as ws:
            assert json.loads(await ws.recv())["type"] == "welcome"
            subscribe = {"type": "subscribe", "channel": f"execution:{execution_id}", "after": 0}
            await ws.send(json.dumps(subscribe))
            seen: list[dict[str, Any]] = []

            async def until(kind: str) -> None:
                while not seen or seen[-1]["type"] != kind:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    if frame["type"] == "message":
                        seen.append(frame["data"])

            await until("execution.waiting")
            approved = await http.post(
                f"/api/v1/executions/{execution_id}/steps/gate/approve",
                json={"approved": True},
                headers=auth,
            )
            assert approved.status_code == 200, approved.text
            await until("execution.succeeded")
        log = await http.get(f"/api/v1/executions/{execution_id}/events", headers=auth)
        assert [e["seq"] for e in seen] == [e["seq"] for e in log.json()["data"]]
