"""An ``llm`` step's tokens reach a WebSocket subscriber as ``token`` frames, live."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

from websockets.asyncio.client import connect

from orchestrion.settings import LlmSettings
from tests.fixtures.llm import LlmServer, llm_server
from tests.services.realtime.conftest import open_platform, recv, settings_for, subscribe

__all__ = ["llm_server"]


async def test_llm_tokens_stream_to_a_socket_then_the_step_ends_with_text_and_cost(
    tmp_path: Path, sqlite_template: Path, llm_server: LlmServer
) -> None:
    key = uuid.uuid4().hex
    settings = settings_for(tmp_path, sqlite_template).model_copy(
        update={
            "llm": LlmSettings.model_validate(
                {
                    "providers": {"oa": {"kind": "openai", "base_url": llm_server.openai(key)}},
                    "pricing": {"m": {"input": 3.0, "output": 15.0}},
                }
            )
        }
    )
    gate = llm_server.state.gates[key] = threading.Event()
    step = {"id": "draft", "type": "llm", "with": {"provider": "oa", "model": "m", "prompt": "Hi"}}
    async with open_platform(settings) as platform:
        auth = {"Authorization": f"Bearer {platform.admin_token}"}
        created = await platform.http.post(
            "/api/v1/workflows", json={"name": "w", "steps": [step]}, headers=auth
        )
        assert created.status_code == 201, created.text
        started = await platform.http.post(
            f"/api/v1/workflows/{created.json()['id']}/executions", json={}, headers=auth
        )
        execution_id = started.json()["id"]
        channel = f"execution:{execution_id}"
        async with connect(platform.ws_url, subprotocols=["bearer", platform.admin_token]) as ws:
            await recv(ws)
            await subscribe(ws, channel, after=0)
            gate.set()  # the provider answers only once the socket listens
            frames = []
            while True:
                frame = await asyncio.wait_for(recv(ws), 20)
                frames.append(frame)
                if frame["type"] == "message" and frame["data"]["type"] == "execution.succeeded":
                    break
        tokens = [f for f in frames if f["type"] == "token"]
        assert [t["text"] for t in tokens] == ["Hel", "lo", ",", " world", "!"]
        assert all(t["channel"] == channel and t["step_id"] == "draft" for t in tokens)
        kinds = [f["data"]["type"] if f["type"] == "message" else "token" for f in frames]
        assert kinds.index("step.succeeded") > max(i for i, k in enumerate(kinds) if k == "token")
        done = await platform.http.get(f"/api/v1/executions/{execution_id}", headers=auth)
        usage = done.json()["usage"]
        assert usage == {
            "input_tokens": 12,
            "output_tokens": 5,
            "cost_usd": round((12 * 3.0 + 5 * 15.0) / 1e6, 9),
        }
