"""LLM tokens over SSE with two workflows instances: a client streaming an execution
through either instance gets every token batch the worker published, in order.

Each instance joins the token topic in a group of its own; with one group shared, the
instances split the batches and each stream missed some (issue 21).
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

import httpx
import pytest

from orchestrion.kernel.bus import open_bus
from orchestrion.kernel.bus.nats import NatsBus
from orchestrion.kernel.bus.redis import RedisBus
from orchestrion.services.workflows.llm.token_bus import CHUNK_TOPIC
from tests.fixtures.llm import LlmServer, llm_server
from tests.fixtures.processes import stop
from tests.kernel.bus.conftest import URLS
from tests.replicas.conftest import Replicas, sign_in

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

__all__ = ["llm_server"]
CHUNKS = [f"word{i} " for i in range(60)]


@pytest.mark.postgres
@pytest.mark.parametrize("broker", ["redis", "rabbitmq", "nats"])
async def test_every_workflows_instance_streams_every_token(
    broker: str, replicas: Replicas, llm_server: LlmServer
) -> None:
    key = uuid.uuid4().hex
    # Slow enough for many batches (one per 50 ms flush), so a split shows.
    llm_server.state.script(key, {"chunks": CHUNKS, "delay": 0.02})
    gate = llm_server.state.gates[key] = threading.Event()
    prefix = f"workflows-tokens-{uuid.uuid4().hex[:8]}"
    replicas.settings.update(
        ORCHESTRION_BUS__URL=URLS[broker],
        ORCHESTRION_REALTIME__BUS_GROUP=f"realtime-{uuid.uuid4().hex[:8]}",
        ORCHESTRION_LLM__TOKEN_BUS_GROUP=prefix,
        ORCHESTRION_LLM__PROVIDERS=json.dumps(
            {"oa": {"kind": "openai", "base_url": llm_server.openai(key)}}
        ),
    )
    auth = await replicas.serve("auth", "auth")
    instances = [await replicas.serve(f"workflows-{n}", "workflows") for n in (1, 2)]
    replicas.worker()
    # One gateway per instance, so that each stream is known to go through its own.
    gateways = [
        await replicas.gateway(
            f"gateway-{n}", f"--upstream=auth={auth}", f"--upstream=workflows={url}"
        )
        for n, url in enumerate(instances, 1)
    ]
    async with (
        httpx.AsyncClient(base_url=gateways[0], timeout=60) as first,
        httpx.AsyncClient(base_url=gateways[1], timeout=60) as second,
    ):
        token = await sign_in(first)
        second.headers["Authorization"] = f"Bearer {token}"
        step = {"id": "draft", "type": "llm", "with": {"model": "m", "prompt": "Hi"}}
        workflow = await first.post("/api/v1/workflows", json={"name": "w", "steps": [step]})
        assert workflow.status_code == 201, workflow.text
        started = await first.post(f"/api/v1/workflows/{workflow.json()['id']}/executions", json={})
        assert started.status_code in (201, 202), started.text
        path = f"/api/v1/executions/{started.json()['id']}/stream"
        async with first.stream("GET", path) as one, second.stream("GET", path) as two:
            assert one.status_code == two.status_code == 200
            gate.set()  # the provider answers once both streams listen
            streams = await asyncio.gather(_sse_frames(one), _sse_frames(two))
    text = "".join(CHUNKS)
    for seen in streams:
        kinds = [kind for kind, _ in seen]
        ended = kinds.index("step.succeeded")
        tokens = [data["text"] for kind, data in seen[:ended] if kind == "token"]
        assert "".join(tokens) == text, kinds
        assert seen[ended][1]["data"]["output"]["text"] == text
    if broker == "rabbitmq":
        return  # its queues cannot be listed without the management plugin
    # Stopped instances leave no group behind.
    assert len(await _token_groups(broker, prefix)) == 2
    for n in (1, 2):
        stop(replicas.processes.pop(f"workflows-{n}"))
    assert await _token_groups(broker, prefix) == []


async def _token_groups(broker: str, prefix: str) -> list[str]:
    """The token groups starting with ``prefix`` at the broker (Redis and NATS)."""
    bus = open_bus(URLS[broker])
    async with bus:
        if isinstance(bus, RedisBus):
            groups = await bus.client.xinfo_groups(bus.stream(CHUNK_TOPIC))
            names = [g["name"].decode() for g in groups]
        elif isinstance(bus, NatsBus):
            consumers = await bus.js.consumers_info(bus.stream_name(CHUNK_TOPIC))
            names = [c.name for c in consumers]
        else:
            raise AssertionError(f"no way to list {broker}'s groups here")
    return [name for name in names if name.startswith(prefix)]


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
