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

from tests.fixtures.databases import PG_HOST, PG_PORT, PG_USER, _admin, in_thread
from tests.fixtures.llm import LlmServer, llm_server
from tests.fixtures.processes import free_port, spawn, start_up, stop, wait_ready
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
    name = f"orchestrion_tok_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(in_thread, asyncio.run, _admin(f'CREATE DATABASE "{name}"'))
    run = uuid.uuid4().hex[:8]
    settings = {
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_DATABASE__URL": f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}",
        "ORCHESTRION_BUS__URL": URLS[broker],
        # Concurrent runs on one broker must not share a group (they would split events).
        "ORCHESTRION_REALTIME__BUS_GROUP": f"realtime-{run}",
        "ORCHESTRION_LLM__TOKEN_BUS_GROUP": f"workflows-tokens-{run}",
        "ORCHESTRION_LLM__PROVIDERS": json.dumps(
            {"oa": {"kind": "openai", "base_url": llm_server.openai(key)}}
        ),
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
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            login = await http.post(
                "/api/v1/auth/login",
                json={"email": "admin@orchestrion.local", "password": PASSWORD},
            )
            token = login.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            step = {"id": "draft", "type": "llm", "with": {"model": "m", "prompt": "Hi"}}
            workflow = await http.post(
                "/api/v1/workflows", json={"name": "w", "steps": [step]}, headers=auth
            )
            started = await http.post(
                f"/api/v1/workflows/{workflow.json()['id']}/executions", json={}, headers=auth
            )
            execution_id = started.json()["id"]
            async with (
                connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["bearer", token]) as ws,
                http.stream(
                    "GET", f"/api/v1/executions/{execution_id}/stream", headers=auth
                ) as sse,
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
    finally:
        for process in (api, worker):
            if process is not None and process.poll() is None:
                print(stop(process)[-3000:])
        in_thread(asyncio.run, _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
