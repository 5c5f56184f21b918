"""Subscriptions over WebSocket (``graphql-transport-ws``), fed by the REST event stream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gql import GraphQLRequest
from gql.transport.exceptions import TransportConnectionFailed, TransportQueryError
from websockets.exceptions import ConnectionClosed

from tests.fixtures.definitions import DOUBLE_THEN_ADD
from tests.gateway.graphql.conftest import Platform, create_workflow, run

APPROVAL: dict[str, Any] = {
    "name": "needs-a-yes",
    "steps": [
        {"id": "ask", "type": "approval", "with": {}},
        {"id": "done", "type": "transform", "needs": ["ask"], "with": {"ok": True}},
    ],
    "outputs": {"ok": "{{ steps.done.output.ok }}"},
}
STATUS = "subscription($id: ID!) { workflowStatus(id: $id) { executionId status outputs error } }"
EVENTS = "subscription($id: ID!) { executionEvents(id: $id) { seq type stepId data at } }"


async def _start(platform: Platform, workflow_id: str) -> str:
    response = await platform.http.post(
        f"/api/v1/workflows/{workflow_id}/executions", json={"inputs": {}}, headers=platform.headers
    )
    assert response.status_code in (200, 202), response.text
    execution_id: str = response.json()["id"]
    for _ in range(100):  # until the approval step waits
        state = await platform.http.get(
            f"/api/v1/executions/{execution_id}", headers=platform.headers
        )
        if state.json()["status"] == "waiting":
            return execution_id
        await asyncio.sleep(0.05)
    raise AssertionError("the execution never waited for its approval")


async def test_workflow_status_follows_an_execution_to_its_end(platform: Platform) -> None:
    workflow = await create_workflow(platform, APPROVAL)
    execution_id = await _start(platform, workflow["id"])
    seen: list[dict[str, Any]] = []
    subscribed = asyncio.Event()

    async def approve_once_subscribed() -> None:
        await subscribed.wait()
        await platform.query(
            """mutation($e: ID!) {
              approveStep(executionId: $e, stepId: "ask", approved: true) { id }
            }""",
            {"e": execution_id},
        )

    approving = asyncio.create_task(approve_once_subscribed())
    async with platform.socket() as session:
        request = GraphQLRequest(STATUS, variable_values={"id": execution_id})
        async with asyncio.timeout(30):
            async for result in session.subscribe(request):
                seen.append(result["workflowStatus"])
                subscribed.set()
    await approving
    statuses = [s["status"] for s in seen]
    assert statuses[0] == "waiting"  # the current status, at once
    assert statuses[-1] == "succeeded"  # the terminal one, then the subscription completed
    assert seen[-1]["outputs"] == {"ok": True}
    assert seen[-1]["executionId"] == execution_id
    assert len(statuses) == len(set(statuses)) or statuses.count("running") <= 1


async def test_workflow_status_of_a_finished_execution_completes_at_once(
    platform: Platform,
) -> None:
    workflow = await create_workflow(platform, DOUBLE_THEN_ADD)
    execution = await run(platform, workflow["id"], {"x": 1})
    async with platform.socket() as session:
        request = GraphQLRequest(STATUS, variable_values={"id": execution["id"]})
        async with asyncio.timeout(15):
            results = [r async for r in session.subscribe(request)]
    assert [r["workflowStatus"]["status"] for r in results] == ["succeeded"]
    assert results[0]["workflowStatus"]["outputs"] == {"result": 3}


async def test_execution_events_replay_the_log_then_follow_it(platform: Platform) -> None:
    workflow = await create_workflow(platform, APPROVAL)
    execution_id = await _start(platform, workflow["id"])
    events: list[dict[str, Any]] = []
    replayed = asyncio.Event()

    async def approve_after_replay() -> None:
        await replayed.wait()
        response = await platform.http.post(
            f"/api/v1/executions/{execution_id}/steps/ask/approve",
            json={"approved": True},
            headers=platform.headers,
        )
        assert response.status_code == 200, response.text

    approving = asyncio.create_task(approve_after_replay())
    async with platform.socket() as session:
        request = GraphQLRequest(EVENTS, variable_values={"id": execution_id})
        async with asyncio.timeout(30):
            async for result in session.subscribe(request):
                events.append(result["executionEvents"])
                if events[-1]["type"] == "execution.waiting":
                    replayed.set()
    await approving
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))  # from the start, none missing
    assert events[0]["type"] == "execution.started"
    assert events[-1]["type"] == "execution.succeeded"
    assert any(e["stepId"] == "ask" for e in events)


async def test_another_tenants_execution_is_not_found(platform: Platform) -> None:
    async with platform.socket() as session:
        request = GraphQLRequest(STATUS, variable_values={"id": "no-such-execution"})
        with pytest.raises(TransportQueryError) as caught:
            async for _ in session.subscribe(request):
                pass
    assert caught.value.errors
    assert caught.value.errors[0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_socket_without_credentials_is_refused(platform: Platform) -> None:
    async def subscribe() -> None:
        async with platform.socket(payload={}) as session:
            request = GraphQLRequest(STATUS, variable_values={"id": "x"})
            async for _ in session.subscribe(request):
                pass

    with pytest.raises(TransportConnectionFailed) as caught:
        await subscribe()
    cause = caught.value.__cause__
    while cause is not None and not isinstance(cause, ConnectionClosed):
        cause = cause.__cause__
    assert isinstance(cause, ConnectionClosed)
    assert cause.rcvd is not None
    assert cause.rcvd.code == 4403  # graphql-transport-ws: connection_init refused
