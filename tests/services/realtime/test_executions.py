"""Execution channels: replay from the execution's own log, then live, each event once.

The workflows service's ``GET /internal/workflows/executions/{id}/events`` is played by a
small Starlette app under uvicorn implementing that contract (paged, and able to hold a
read so that replay and live traffic overlap on purpose); ``test_platform.py`` runs the
same replay against the real workflows service.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestrion.kernel.auth.identity import INTERNAL_HEADER, is_internal_call
from tests.services.realtime.conftest import (
    SECRET,
    RealtimeServer,
    StartRealtime,
    recv,
    send,
    serve,
    subscribe,
)


def _event(seq: int) -> dict[str, Any]:
    return {
        "seq": seq, "type": "step.succeeded", "step_id": f"s{seq}",
        "data": {"n": seq}, "at": f"2026-01-01T00:00:{seq:02d}Z",
    }  # fmt: skip


class ExecutionLog:
    """The workflows side: executions' tenants and events; ``gate`` can hold a read."""

    def __init__(self) -> None:
        self.executions: dict[str, tuple[str, list[dict[str, Any]]]] = {
            "e1": ("t1", [_event(n) for n in range(1, 6)]),
        }
        self.page = 2
        self.gate = asyncio.Event()
        self.gate.set()
        self.reading = asyncio.Event()

    async def events(self, request: Request) -> JSONResponse:
        if not is_internal_call(request.headers.get(INTERNAL_HEADER), SECRET):
            return JSONResponse({"detail": "not found"}, status_code=404)
        found = self.executions.get(request.path_params["execution_id"])
        if found is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        after = int(request.query_params.get("after", "0"))
        if after < 1000 and not self.reading.is_set():  # the first read of the log
            self.reading.set()
            await self.gate.wait()
        tenant, events = found
        page = [e for e in events if e["seq"] > after][: self.page]  # like the real one, paged
        return JSONResponse({"tenant_id": tenant, "data": page})


@pytest.fixture
async def log_and_server(
    realtime_server: StartRealtime,
) -> AsyncIterator[tuple[ExecutionLog, RealtimeServer]]:
    log = ExecutionLog()
    route = Route("/internal/workflows/executions/{execution_id}/events", log.events)
    async with serve(Starlette(routes=[route])) as workflows:
        server = await realtime_server(peers={"workflows": f"http://{workflows}"})
        yield log, server


async def _publish_event(server: RealtimeServer, seq: int) -> None:
    response = await server.publish(
        {"tenant_id": "t1", "channel": "execution:e1", "data": _event(seq), "seq": seq}
    )
    assert response.status_code == 200, response.text
    assert response.json()["seq"] == seq


async def test_replay_then_live_without_gaps_or_duplicates(
    log_and_server: tuple[ExecutionLog, RealtimeServer],
) -> None:
    log, server = log_and_server
    async with server.connect("ann") as ann:
        await recv(ann)
        log.gate.clear()
        await send(ann, type="subscribe", channel="execution:e1", after=2, ref="r")
        await asyncio.wait_for(log.reading.wait(), 10)
        # While realtime reads the log, the engine appends event 6 and publishes 5 again,
        # 6 and 7 live: the replay and the live stream overlap.
        log.executions["e1"][1].append(_event(6))
        for seq in (5, 6, 7):
            await _publish_event(server, seq)
        log.gate.set()
        assert await recv(ann) == {
            "type": "subscribed",
            "channel": "execution:e1",
            "seq": 6,
            "ref": "r",
        }
        frames = [await recv(ann) for _ in range(5)]
        assert [f["seq"] for f in frames] == [3, 4, 5, 6, 7]
        assert all(f["type"] == "message" and f["channel"] == "execution:e1" for f in frames)
        assert frames[0]["data"] == _event(3)

        ephemeral = await server.publish({
            "tenant_id": "t1", "channel": "execution:e1", "ephemeral": True,
            "data": {"step_id": "llm", "text": "Hel"},
        })  # fmt: skip
        assert ephemeral.json()["seq"] is None
        assert await recv(ann) == {
            "type": "token",
            "channel": "execution:e1",
            "step_id": "llm",
            "text": "Hel",
        }
        await _publish_event(server, 8)
        assert (await recv(ann))["seq"] == 8

    # Tokens are never stored: a resume sees only the log.
    log.executions["e1"][1].extend([_event(7), _event(8)])
    async with server.connect("ann") as ann:
        await recv(ann)
        assert (await subscribe(ann, "execution:e1", after=6))["seq"] == 8
        assert [(await recv(ann))["seq"] for _ in range(2)] == [7, 8]
        # Without `after`: the latest seq, then live only.
        assert (await subscribe(ann, "execution:e1"))["seq"] == 8
        await _publish_event(server, 9)
        assert (await recv(ann))["seq"] == 9


async def test_unknown_or_foreign_executions_are_not_found(
    log_and_server: tuple[ExecutionLog, RealtimeServer],
) -> None:
    _, server = log_and_server
    async with server.connect("xi", tenant="t2") as xi, server.connect("ann") as ann:
        await recv(xi)
        await recv(ann)
        for ws, channel in ((xi, "execution:e1"), (ann, "execution:nope")):
            await send(ws, type="subscribe", channel=channel, ref=1)
            answer = await recv(ws)
            assert (answer["type"], answer["code"], answer["ref"]) == ("error", "not_found", 1)
        await _publish_event(server, 6)  # t1's execution: t2 sees nothing of it
        await send(xi, type="ping")
        assert (await recv(xi))["type"] == "pong"
