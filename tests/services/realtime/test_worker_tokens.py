"""An ``llm`` step run by an ``orchestrion worker`` process streams its tokens.

``orchestrion up`` (API, realtime, no embedded workers) and a worker share PostgreSQL
and a broker. The worker batches token chunks straight onto the bus; realtime fans them
out as ``token`` frames on ``execution:<id>`` and the workflows service hands them to
its SSE streams, before the step's ``step.succeeded`` event, adding up to its text.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.fixtures.llm import LlmServer, llm_server
from tests.fixtures.worker_processes import api_and_worker
from tests.kernel.bus.conftest import URLS

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

__all__ = ["llm_server"]
PASSWORD = "tokens-password-1"
CHUNKS = [f"word{i} " for i in range(40)]


@pytest.mark.postgres
@pytest.mark.parametrize("broker", ["redis", "nats"])
async def test_worker_process_tokens_reach_a_socket_and_sse_before_the_step_ends(
    broker: str, tmp_path: Path, postgres_url: str, llm_server: LlmServer
) -> None:
    key = uuid.uuid4().hex
    llm_server.state.script(key, {"chunks": CHUNKS, "delay": 0.01})
    gate = llm_server.state.gates[key] = threading.Event()
    run = uuid.uuid4().hex[:8]
    settings = {
        "ORCHESTRION_LLM__TOKEN_BUS_GROUP": f"workflows-tokens-{run}",
        "ORCHESTRION_LLM__PROVIDERS": json.dumps(
            {"oa": {"kind": "openai", "base_url": llm_server.openai(key)}}
        ),
    }
    async with api_and_worker(
        tmp_path, bus_url=URLS[broker], password=PASSWORD, client_timeout=30, **settings
    ) as running:
        http = running.http
        step = {"id": "draft", "type": "llm", "with": {"model": "m", "prompt": "Hi"}}
        workflow = await http.post("/api/v1/workflows", json={"name": "w", "steps": [step]})
        started = await http.post(f"/api/v1/workflows/{workflow.json()['id']}/executions", json={})
        execution_id = started.json()["id"]
        async with (
            connect(
                f"ws://127.0.0.1:{running.port}/ws", subprotocols=["bearer", running.token]
            ) as ws,
            http.stream("GET", f"/api/v1/executions/{execution_id}/stream") as sse,
        ):
            assert json.loads(await ws.recv())["type"] == "welcome"
            channel = f"execution:{execution_id}"
            await ws.send(json.dumps({"type": "subscribe", "channel": channel, "after": 0}))
            while json.loads(await ws.recv())["type"] != "subscribed":
                pass
            gate.set()  # the provider answers once both watchers listen
            frames, sse_frames = await asyncio.gather(_ws_frames(ws), _sse_frames(sse))
    text = "".join(CHUNKS)
    for seen in (frames, sse_frames):
        kinds = [kind for kind, _ in seen]
        ended = kinds.index("step.succeeded")
        tokens = [data for kind, data in seen[:ended] if kind == "token"]
        assert tokens, kinds
        assert "".join(t["text"] for t in tokens) == text
        assert all(t["step_id"] == "draft" for t in tokens)
        assert "token" not in kinds[ended:]
        assert seen[ended][1]["data"]["output"]["text"] == text


async def _ws_frames(ws: Any) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if frame["type"] == "token":
            seen.append(("token", frame))
        elif frame["type"] == "message":
            seen.append((frame["data"]["type"], frame["data"]))
            if frame["data"]["type"] == "execution.succeeded":
                return seen


async def _sse_frames(sse: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    async for line in sse.aiter_lines():
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            seen.append((kind, json.loads(line.removeprefix("data: "))))
            if kind == "execution.succeeded":
                return seen
    return seen
