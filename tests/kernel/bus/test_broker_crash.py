"""A broker crash loses and duplicates nothing on the way to realtime subscribers.

Each test starts a broker of its own, runs executions on the platform (engine → outbox
→ relay → broker → realtime → socket), SIGKILLs the broker while they publish, starts
it again on the same port, and checks that every socket saw its execution's log
exactly, in order, with no gap and no repeat. While the broker is down the outbox
holds what could not be sent; the relay and the consumers reconnect and resume.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from orchestrion.kernel.bus import open_bus
from orchestrion.settings import BusSettings
from tests.fixtures.brokers import BrokerProcess, own_broker
from tests.kernel.bus.conftest import Collector
from tests.services.realtime.conftest import Platform, open_platform, recv, settings_for

# Broker restarts and reconnections take seconds; RabbitMQ boots in about ten.
pytestmark = pytest.mark.timeout(360)

EXECUTIONS = 3
STEPS = 8
#: How long a consumer or the relay may take to find the restarted broker.
RECOVERY = 90.0


@pytest.mark.parametrize(
    "broker", ["redis", "nats", "rabbitmq", pytest.param("kafka", marks=pytest.mark.kafka)]
)
async def test_a_broker_crash_loses_and_repeats_no_event(
    broker: str, tmp_path: Path, sqlite_template: Path
) -> None:
    server, url = own_broker(broker, tmp_path / "broker")
    await asyncio.to_thread(server.start)
    try:
        await _crash_while_publishing(server, url, tmp_path, sqlite_template)
    except BaseException:
        print(f"--- {broker} output ---\n{server.tail(4000)}")
        raise
    finally:
        await asyncio.to_thread(server.close)


async def _crash_while_publishing(
    server: BrokerProcess, url: str, tmp_path: Path, sqlite_template: Path
) -> None:
    settings = settings_for(tmp_path, sqlite_template).model_copy(
        update={"bus": BusSettings(url=url)}
    )
    # A second group on the topic: its handler must see each event once, crash or not.
    witness = Collector()
    await _declare_then_restart(server, url, settings)
    async with open_bus(url) as probe, open_platform(settings) as platform:
        await probe.subscribe("workflows.executions", "crash-witness", witness)
        platform.http.headers["Authorization"] = f"Bearer {platform.admin_token}"
        executions = [await _start(platform) for _ in range(EXECUTIONS)]
        watchers = [asyncio.create_task(_watch(platform, e)) for e in executions]

        # Some events have gone through; the rest are being published when it dies.
        await witness.wait_until(lambda c: len(c.events) >= EXECUTIONS * 2, within=60)
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(1.5)  # executions go on, their events wait in the outbox
        before_restart = len(witness.events)
        restarted = time.monotonic()
        await asyncio.to_thread(server.start)

        seen = await asyncio.wait_for(asyncio.gather(*watchers), RECOVERY)
        print(f"recovered {time.monotonic() - restarted:.1f} s after the restart")
        logged: list[list[dict[str, Any]]] = []
        for execution_id in executions:
            log = await platform.http.get(f"/api/v1/executions/{execution_id}/events")
            logged.append(log.json()["data"])
        total = sum(len(events) for events in logged)
        await witness.wait_until(lambda c: len(c.events) >= total, within=RECOVERY)

    for live, log in zip(seen, logged, strict=True):
        assert [m["seq"] for m in live] == [e["seq"] for e in log]
        assert [m["data"]["type"] for m in live] == [e["type"] for e in log]
        assert live[-1]["data"]["type"] == "execution.succeeded"
    assert before_restart < total  # some events crossed only after the restart
    assert len(witness.ids) == len(set(witness.ids)) == total
    assert witness.calls == total


async def _declare_then_restart(server: BrokerProcess, url: str, settings: Any) -> None:
    """Declare every group, then restart the broker cleanly: a deployment that has run.

    A single RabbitMQ 3.10 node SIGKILLed seconds after declaring a quorum queue can
    come back without it (the queue's Ra server was not yet in the registry on disk,
    so it never elects a leader and every consume times out): a broker limit no
    client can mend, and not the crash this test is about.
    """
    async with open_bus(url) as probe, open_platform(settings):
        await probe.subscribe("workflows.executions", "crash-witness", Collector())
    await asyncio.to_thread(server.stop)
    await asyncio.to_thread(server.start)


async def _start(platform: Platform) -> str:
    steps: list[dict[str, Any]] = [{"id": "s0", "type": "delay", "with": {"seconds": 0.25}}]
    for n in range(1, STEPS):
        steps.append(
            {"id": f"s{n}", "type": "delay", "needs": [f"s{n - 1}"], "with": {"seconds": 0.25}}
        )
    workflow = await platform.http.post(
        "/api/v1/workflows", json={"name": "through-a-crash", "steps": steps}
    )
    assert workflow.status_code == 201, workflow.text
    started = await platform.http.post(f"/api/v1/workflows/{workflow.json()['id']}/executions")
    assert started.status_code == 202, started.text
    execution_id: str = started.json()["id"]
    return execution_id


async def _watch(platform: Platform, execution_id: str) -> list[dict[str, Any]]:
    """The messages a socket subscribed from the start sees until the execution ends."""
    async with connect(platform.ws_url, subprotocols=["bearer", platform.admin_token]) as ws:
        await recv(ws)
        await _send(ws, type="subscribe", channel=f"execution:{execution_id}", after=0)
        # A live client pings; the broker's recovery can outlast the server's patience.
        pinger = asyncio.create_task(_ping(ws))
        seen: list[dict[str, Any]] = []
        try:
            while not seen or seen[-1]["data"]["type"] != "execution.succeeded":
                frame = json.loads(await ws.recv())
                if frame["type"] == "message":
                    seen.append(frame)
        finally:
            pinger.cancel()
        return seen


async def _ping(ws: ClientConnection) -> None:
    while True:
        await asyncio.sleep(10)
        await _send(ws, type="ping")


async def _send(ws: ClientConnection, **frame: Any) -> None:
    await ws.send(json.dumps(frame))
