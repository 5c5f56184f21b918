"""A worker process runs the execution; the API process's realtime streams it over the bus.

``orchestrion up`` (API and realtime, no embedded workers) and ``orchestrion worker`` share
PostgreSQL and a broker. The worker's log entries leave through its outbox relay, reach the
realtime service through the broker, and arrive live on a client's socket.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.fixtures.databases import PG_HOST, PG_PORT, PG_USER, _admin, in_thread
from tests.fixtures.processes import free_port, spawn, start_up, stop, wait_ready
from tests.kernel.bus.conftest import URLS

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

PASSWORD = "bus-password-1"


@pytest.mark.postgres
@pytest.mark.parametrize("broker", ["rabbitmq", "nats", "redis"])
async def test_worker_process_streams_to_a_socket_through_the_broker(
    broker: str, tmp_path: Path, postgres_url: str
) -> None:
    name = f"orchestrion_bus_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(in_thread, asyncio.run, _admin(f'CREATE DATABASE "{name}"'))
    settings = {
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_DATABASE__URL": f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}",
        "ORCHESTRION_BUS__URL": URLS[broker],
        # Concurrent runs on one broker must not share a group (they would split events).
        "ORCHESTRION_REALTIME__BUS_GROUP": f"realtime-{uuid.uuid4().hex[:8]}",
        "ORCHESTRION_ENGINE__EMBEDDED_WORKERS": "false",
        "ORCHESTRION_ENGINE__POLL_SECONDS": "0.2",
        "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = start_up(tmp_path, port, **settings)
    worker = None
    try:
        await asyncio.to_thread(wait_ready, base, api)
        worker = spawn(tmp_path, "worker", **settings)
        async with httpx.AsyncClient(base_url=base, timeout=15) as http:
            login = await http.post(
                "/api/v1/auth/login",
                json={"email": "admin@orchestrion.local", "password": PASSWORD},
            )
            token = login.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            definition = {
                "name": "remote",
                "steps": [
                    {"id": "gate", "type": "approval", "with": {}},
                    {"id": "pause", "type": "delay", "needs": ["gate"], "with": {"seconds": 0.2}},
                    {"id": "done", "type": "transform", "needs": ["pause"], "with": {"v": 1}},
                ],
            }
            workflow = await http.post("/api/v1/workflows", json=definition, headers=auth)
            started = await http.post(
                f"/api/v1/workflows/{workflow.json()['id']}/executions", json={}, headers=auth
            )
            execution_id = started.json()["id"]
            async with connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["bearer", token]) as ws:
                assert json.loads(await ws.recv())["type"] == "welcome"
                await ws.send(
                    json.dumps(
                        {"type": "subscribe", "channel": f"execution:{execution_id}", "after": 0}
                    )
                )
                seen: list[dict[str, object]] = []

                async def until(kind: str, seconds: float = 20) -> None:
                    while not seen or seen[-1]["type"] != kind:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), seconds))
                        if frame["type"] == "message":
                            seen.append(frame["data"])

                # The first event waits for the worker process to start and subscribe,
                # which takes a minute on a loaded machine (the suite runs in parallel).
                await until("execution.waiting", 120)  # the worker started the approval step
                approved = await http.post(
                    f"/api/v1/executions/{execution_id}/steps/gate/approve",
                    json={"approved": True},
                    headers=auth,
                )
                assert approved.status_code == 200, approved.text
                await until("execution.succeeded")  # timer and steps run by the worker
            log = await http.get(f"/api/v1/executions/{execution_id}/events", headers=auth)
            assert [e["seq"] for e in seen] == [e["seq"] for e in log.json()["data"]]
    finally:
        for process in (api, worker):
            if process is not None and process.poll() is None:
                print(stop(process)[-3000:])
        in_thread(asyncio.run, _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
