"""A worker process runs the execution; the API process's realtime streams it over the bus.

``orchestrion up`` (API and realtime, no embedded workers) and ``orchestrion worker`` share
PostgreSQL and a broker. The worker's log entries leave through its outbox relay, reach the
realtime service through the broker, and arrive live on a client's socket.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.fixtures.worker_processes import api_and_worker
from tests.kernel.bus.conftest import process_broker_url

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

PASSWORD = "bus-password-1"


@pytest.mark.postgres
@pytest.mark.parametrize(
    "broker", ["rabbitmq", "nats", "redis", pytest.param("kafka", marks=pytest.mark.kafka)]
)
async def test_worker_process_streams_to_a_socket_through_the_broker(
    broker: str, tmp_path: Path, postgres_url: str, request: pytest.FixtureRequest
) -> None:
    async with api_and_worker(
        tmp_path, bus_url=process_broker_url(request, broker), password=PASSWORD
    ) as running:
        http = running.http
        definition = {
            "name": "remote",
            "steps": [
                {"id": "gate", "type": "approval", "with": {}},
                {"id": "pause", "type": "delay", "needs": ["gate"], "with": {"seconds": 0.2}},
                {"id": "done", "type": "transform", "needs": ["pause"], "with": {"v": 1}},
            ],
        }
        workflow = await http.post("/api/v1/workflows", json=definition)
        started = await http.post(f"/api/v1/workflows/{workflow.json()['id']}/executions", json={})
        execution_id = started.json()["id"]
        url = f"ws://127.0.0.1:{running.port}/ws"
        async with connect(url, subprotocols=["bearer", running.token]) as ws:
            assert json.loads(await ws.recv())["type"] == "welcome"
            channel = f"execution:{execution_id}"
            await ws.send(json.dumps({"type": "subscribe", "channel": channel, "after": 0}))
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
                f"/api/v1/executions/{execution_id}/steps/gate/approve", json={"approved": True}
            )
            assert approved.status_code == 200, approved.text
            await until("execution.succeeded")  # timer and steps run by the worker
        log = await http.get(f"/api/v1/executions/{execution_id}/events")
        assert [e["seq"] for e in seen] == [e["seq"] for e in log.json()["data"]]
