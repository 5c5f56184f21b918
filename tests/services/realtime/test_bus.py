"""Execution events through a real broker: engine → outbox → relay → bus → realtime → socket."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from orchestrion.kernel.bus import BusUnavailable, open_bus
from orchestrion.settings import BusSettings
from tests.fixtures.databases import server_missing
from tests.kernel.bus.conftest import URLS
from tests.services.realtime.conftest import open_platform, recv, settings_for, subscribe


@pytest.mark.parametrize("broker", ["redis", "rabbitmq", "nats"])
async def test_a_socket_sees_an_execution_run_through_the_bus(
    broker: str, tmp_path: Path, sqlite_template: Path
) -> None:
    probe = open_bus(URLS[broker])
    try:
        await probe.start()
    except (BusUnavailable, OSError) as exc:
        server_missing(f"{broker} at {URLS[broker]}", exc)
    await probe.close(grace=0)
    settings = settings_for(tmp_path, sqlite_template).model_copy(
        update={"bus": BusSettings(url=URLS[broker])}
    )
    async with open_platform(settings) as platform:
        http = platform.http
        auth = {"Authorization": f"Bearer {platform.admin_token}"}
        definition = {
            "name": "via-bus",
            "steps": [
                {"id": "gate", "type": "approval", "with": {}},
                {"id": "done", "type": "transform", "needs": ["gate"], "with": {"v": 1}},
            ],
        }
        workflow = await http.post("/api/v1/workflows", json=definition, headers=auth)
        started = await http.post(
            f"/api/v1/workflows/{workflow.json()['id']}/executions", json={}, headers=auth
        )
        execution_id = started.json()["id"]
        async with connect(platform.ws_url, subprotocols=["bearer", platform.admin_token]) as ws:
            await recv(ws)
            await subscribe(ws, f"execution:{execution_id}", after=0)
            seen = []
            while not seen or seen[-1]["data"]["type"] != "execution.waiting":
                frame = await recv(ws)
                if frame["type"] == "message":
                    seen.append(frame)
            # From here on the events can only come live, from the bus.
            approved = await http.post(
                f"/api/v1/executions/{execution_id}/steps/gate/approve",
                json={"approved": True},
                headers=auth,
            )
            assert approved.status_code == 200, approved.text
            while seen[-1]["data"]["type"] != "execution.succeeded":
                frame = await recv(ws)
                if frame["type"] == "message":
                    seen.append(frame)
        log = await http.get(f"/api/v1/executions/{execution_id}/events", headers=auth)
        assert [m["seq"] for m in seen] == [e["seq"] for e in log.json()["data"]]
