"""The embedded platform end to end: an execution's real event log replayed over ``/ws``."""

from __future__ import annotations

from typing import Any

from websockets.asyncio.client import connect

from tests.services.realtime.conftest import Platform, recv, send, subscribe

DEFINITION: dict[str, Any] = {
    "name": "double",
    "inputs": {"type": "object", "properties": {"x": {"type": "integer"}}},
    "steps": [{"id": "double", "type": "transform", "with": {"value": "{{ inputs.x * 2 }}"}}],
    "outputs": {"result": "{{ steps.double.output.value }}"},
}


async def test_execution_channel_replays_the_workflows_log(platform: Platform) -> None:
    auth = {"Authorization": f"Bearer {platform.admin_token}"}
    created = await platform.http.post("/api/v1/workflows", json=DEFINITION, headers=auth)
    assert created.status_code == 201, created.text
    run = await platform.http.post(
        f"/api/v1/workflows/{created.json()['id']}/executions",
        params={"wait": 10},
        json={"inputs": {"x": 21}},
        headers=auth,
    )
    assert run.status_code in (200, 202), run.text
    execution_id = run.json()["id"]
    log = await platform.http.get(f"/api/v1/executions/{execution_id}/events", headers=auth)
    assert log.status_code == 200, log.text
    events = log.json()["data"]
    assert events

    async with connect(platform.ws_url, subprotocols=["bearer", platform.admin_token]) as ws:
        await recv(ws)
        answer = await subscribe(ws, f"execution:{execution_id}", after=0)
        assert answer["seq"] == events[-1]["seq"]
        replayed = [await recv(ws) for _ in events]
        assert [m["seq"] for m in replayed] == [e["seq"] for e in events]
        assert [m["data"]["type"] for m in replayed] == [e["type"] for e in events]
        await send(ws, type="subscribe", channel="execution:no-such-execution", ref="x")
        assert (await recv(ws))["code"] == "not_found"


async def test_resume_mid_execution_gets_every_event_once_in_order(platform: Platform) -> None:
    """Live events from the engine; a reconnect with ``after`` misses nothing, repeats nothing."""
    auth = {"Authorization": f"Bearer {platform.admin_token}"}
    definition = {
        "name": "gated",
        "steps": [
            {"id": "first", "type": "transform", "with": {"v": 1}},
            {"id": "gate", "type": "approval", "needs": ["first"], "with": {}},
            {"id": "after", "type": "transform", "needs": ["gate"], "with": {"v": 2}},
            {"id": "gate2", "type": "approval", "needs": ["after"], "with": {}},
            {"id": "last", "type": "delay", "needs": ["gate2"], "with": {"seconds": 0.1}},
        ],
    }
    created = await platform.http.post("/api/v1/workflows", json=definition, headers=auth)
    workflow_id = created.json()["id"]
    started = await platform.http.post(
        f"/api/v1/workflows/{workflow_id}/executions", json={"inputs": {}}, headers=auth
    )
    execution_id = started.json()["id"]
    channel = f"execution:{execution_id}"
    seen: list[dict[str, Any]] = []

    async with connect(platform.ws_url, subprotocols=["bearer", platform.admin_token]) as ws:
        await recv(ws)
        await subscribe(ws, channel, after=0)
        while not seen or seen[-1]["data"]["type"] != "execution.waiting":
            frame = await recv(ws)
            if frame["type"] == "message":
                seen.append(frame)
    # Disconnected: the execution goes on without us.
    approved = await platform.http.post(
        f"/api/v1/executions/{execution_id}/steps/gate/approve",
        json={"approved": True},
        headers=auth,
    )
    assert approved.status_code == 200, approved.text
    async with connect(platform.ws_url, subprotocols=["bearer", platform.admin_token]) as ws:
        await recv(ws)
        await subscribe(ws, channel, after=seen[-1]["seq"])
        while (seen[-1]["data"]["type"], seen[-1]["data"]["step_id"]) != ("step.waiting", "gate2"):
            frame = await recv(ws)
            if frame["type"] == "message":
                seen.append(frame)
        # Still connected: these events arrive live, pushed by the engine as they commit.
        approved = await platform.http.post(
            f"/api/v1/executions/{execution_id}/steps/gate2/approve",
            json={"approved": True},
            headers=auth,
        )
        assert approved.status_code == 200, approved.text
        while seen[-1]["data"]["type"] != "execution.succeeded":
            frame = await recv(ws)
            if frame["type"] == "message":
                seen.append(frame)
    log = await platform.http.get(
        f"/api/v1/executions/{execution_id}/events", params={"limit": 1000}, headers=auth
    )
    events = log.json()["data"]
    assert [m["seq"] for m in seen] == [e["seq"] for e in events]  # each once, in order
    assert [m["data"]["type"] for m in seen] == [e["type"] for e in events]
