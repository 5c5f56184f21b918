"""A retried ``agent`` step reuses what it already ran: the model's answers that asked
for tools and the tools' results come from the step's journal, so a tool workflow runs
once, an answered model call is not repeated, and each call's usage is counted once."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrion.engine.models import JournalRecord
from orchestrion.kernel.ids import utcnow
from orchestrion.settings import Settings, open_database
from tests.conftest import make_settings
from tests.fixtures.llm import LlmServer, llm_server
from tests.fixtures.upstream import Upstream
from tests.services.workflows.helpers import TERMINAL, create_workflow, start, wait_until

__all__ = ["llm_server"]
PRICES = {"test-model": {"input": 2.0, "output": 10.0}}
#: What one answered call of the loopback provider costs (12 tokens in, 5 out).
ONE_CALL = round((12 * 2.0 + 5 * 10.0) / 1e6, 9)
#: The provider answers 500 twice: the call and its one retry (``max_retries``: 1).
OUTAGE = ({"status": 500}, {"status": 500})


@pytest.fixture
def key() -> str:
    """This test's provider key (the loopback server keeps counters per key)."""
    return uuid.uuid4().hex


@pytest.fixture
def settings(tmp_path: Path, database_url: str, llm_server: LlmServer, key: str) -> Settings:
    """Provider `oa` (OpenAI-compatible) on loopback, with prices."""
    providers = {"oa": {"kind": "openai", "base_url": llm_server.openai(key), "api_key": "sk"}}
    llm = {"providers": providers, "pricing": PRICES, "max_retries": 1}
    return make_settings(tmp_path, database_url, llm=llm)


async def adder(client: httpx.AsyncClient, headers: dict[str, str], upstream: Upstream) -> str:
    """A tool workflow that adds two numbers and calls the upstream once per run
    (``calls[hits-<a>-<b>]`` counts its runs for those arguments)."""
    hit = upstream.url + "/flaky/hits-{{ inputs.a }}-{{ inputs.b }}-{{ inputs.tag }}"
    return await create_workflow(
        client, headers,
        [{"id": "hit", "type": "http", "with": {"url": hit}},
         {"id": "sum", "type": "transform", "with": {"total": "{{ inputs.a + inputs.b }}"}}],
        name="adder", description="Add two numbers",
        inputs={"type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"},
                               "tag": {"type": "string"}}},
        outputs={"total": "{{ steps.sum.output.total }}"},
    )  # fmt: skip


def add(a: int, b: int, tag: str) -> dict[str, Any]:
    """The model asking for the adder."""
    return {"name": "adder", "arguments": {"a": a, "b": b, "tag": tag}}


async def runs_of(client: httpx.AsyncClient, headers: dict[str, str], workflow_id: str) -> int:
    """How many executions of ``workflow_id`` there are (the tool's child executions)."""
    response = await client.get(
        "/api/v1/executions", params={"workflow_id": workflow_id, "limit": 100}, headers=headers
    )
    assert response.status_code == 200, response.text
    return len(response.json()["data"])


def agent(tool: str, **extra: Any) -> dict[str, Any]:
    """An agent step offered the adder."""
    return {
        "id": "think", "type": "agent",
        "with": {"provider": "oa", "model": "test-model", "prompt": "Add up.",
                 "tools": [{"workflow_id": tool}], "max_iterations": 4},
        **extra,
    }  # fmt: skip


async def test_a_retried_attempt_reuses_the_tool_run_and_the_answered_call(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    llm_server: LlmServer,
    upstream: Upstream,
    key: str,
) -> None:
    tag = uuid.uuid4().hex[:8]
    tool = await adder(client, admin_headers, upstream)
    llm_server.state.script(
        key, {"tool_calls": [add(2, 3, tag)]}, *OUTAGE, {"chunks": ["It is 5."]}
    )
    workflow = await create_workflow(
        client, admin_headers, [agent(tool, retry={"max_attempts": 2, "delay": 0.01})],
        outputs={"o": "{{ steps.think.output }}"},
    )  # fmt: skip
    done = await start(client, admin_headers, workflow, wait=60)
    done = await wait_until(
        client, admin_headers, done["id"], lambda e: e["status"] in TERMINAL, seconds=60
    )
    assert done["status"] == "succeeded", done
    think = next(s for s in done["steps"] if s["id"] == "think")
    assert think["attempts"] == 2
    # The tool workflow ran once, over both attempts.
    assert upstream.state.calls[f"hits-2-3-{tag}"] == 1
    assert await runs_of(client, admin_headers, tool) == 1
    # The answer that asked for the tool was not asked again: 1 + 2 refused + the last.
    assert llm_server.state.calls[key] == 4
    last = llm_server.state.bodies[key][-1]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "tool"]
    assert last[1]["tool_calls"][0]["function"]["name"] == "adder"
    assert last[2] == {"role": "tool", "tool_call_id": "call_0", "content": '{"total": 5}'}
    out = done["outputs"]["o"]
    assert out["text"] == "It is 5."
    assert out["iterations"] == 2
    assert out["tool_calls"] == [{**add(2, 3, tag), "id": "call_0", "result": {"total": 5}}]
    # Two answered calls, each counted once: in the output and in the execution's usage.
    assert out["usage"]["input_tokens"] == 24
    assert done["usage"] == {
        "input_tokens": 24,
        "output_tokens": 10,
        "cost_usd": pytest.approx(2 * ONE_CALL),
    }


async def test_a_retried_execution_reuses_every_recorded_answer_and_tool(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    llm_server: LlmServer,
    upstream: Upstream,
    key: str,
) -> None:
    tag = uuid.uuid4().hex[:8]
    tool = await adder(client, admin_headers, upstream)
    llm_server.state.script(
        key,
        {"tool_calls": [add(2, 3, tag), add(1, 1, tag)]},
        {"tool_calls": [add(5, 2, tag)]},
        *OUTAGE,
        {"chunks": ["Done."]},
    )
    workflow = await create_workflow(
        client, admin_headers, [agent(tool)], outputs={"o": "{{ steps.think.output }}"}
    )
    failed = await start(client, admin_headers, workflow, wait=60)
    failed = await wait_until(
        client, admin_headers, failed["id"], lambda e: e["status"] == "failed", seconds=60
    )
    assert llm_server.state.calls[key] == 4
    # The two answers were paid for: counted once, though the attempt failed.
    assert failed["usage"] == {
        "input_tokens": 24,
        "output_tokens": 10,
        "cost_usd": pytest.approx(2 * ONE_CALL),
    }

    retried = await client.post(f"/api/v1/executions/{failed['id']}/retry", headers=admin_headers)
    assert retried.status_code == 200, retried.text
    done = await wait_until(
        client, admin_headers, failed["id"], lambda e: e["status"] == "succeeded", seconds=60
    )
    assert llm_server.state.calls[key] == 5
    hits = [upstream.state.calls[f"hits-{a}-{b}-{tag}"] for a, b in ((2, 3), (1, 1), (5, 2))]
    assert hits == [1, 1, 1]
    assert await runs_of(client, admin_headers, tool) == 3
    # The retry asked once, with the whole conversation rebuilt as it was.
    last = llm_server.state.bodies[key][-1]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "tool", "assistant", "tool"]
    assert [m["content"] for m in last if m["role"] == "tool"] == [
        '{"total": 5}', '{"total": 2}', '{"total": 7}'
    ]  # fmt: skip
    out = done["outputs"]["o"]
    assert out["iterations"] == 3
    assert [c["result"] for c in out["tool_calls"]] == [{"total": 5}, {"total": 2}, {"total": 7}]
    assert out["usage"]["input_tokens"] == 36
    assert done["usage"] == {
        "input_tokens": 36,
        "output_tokens": 15,
        "cost_usd": pytest.approx(3 * ONE_CALL),
    }


async def test_an_answer_recorded_first_by_a_racing_attempt_is_the_one_followed(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    llm_server: LlmServer,
    upstream: Upstream,
    settings: Settings,
    key: str,
) -> None:
    """Two workers running one attempt (a lost lease) both ask the model; the answer
    recorded first is the one every attempt follows, and both calls are counted."""
    tag = uuid.uuid4().hex[:8]
    tool = await adder(client, admin_headers, upstream)
    llm_server.state.script(key, {"tool_calls": [add(2, 3, tag)]}, {"chunks": ["It is 8."]})
    gate = llm_server.state.gates[key] = threading.Event()
    workflow = await create_workflow(
        client, admin_headers, [agent(tool)], outputs={"o": "{{ steps.think.output }}"}
    )
    started = await start(client, admin_headers, workflow)
    deadline = time.monotonic() + 60
    while llm_server.state.calls[key] < 1:
        assert time.monotonic() < deadline, "the model was not called"
        await asyncio.sleep(0.05)
    # The other worker's answer lands while this one's call is under way.
    theirs = {"text": "", "model": "test-model", "finish_reason": "tool_calls",
              "tool_calls": [{"id": "call_0", **add(7, 1, tag)}]}  # fmt: skip
    database = open_database(settings)
    async with database.session() as session:
        session.add(
            JournalRecord(
                execution_id=started["id"], step_id="think", iteration=-1, part=0,
                output=theirs, usage=[], recorded_at=utcnow(),
            )
        )  # fmt: skip
    await database.dispose()
    gate.set()
    done = await wait_until(
        client, admin_headers, started["id"], lambda e: e["status"] in TERMINAL, seconds=60
    )
    assert done["status"] == "succeeded", done
    assert upstream.state.calls[f"hits-7-1-{tag}"] == 1
    assert upstream.state.calls[f"hits-2-3-{tag}"] == 0
    out = done["outputs"]["o"]
    assert out["tool_calls"] == [{**add(7, 1, tag), "id": "call_0", "result": {"total": 8}}]
    # This worker's own call was paid for and is counted, with the final answer.
    assert done["usage"]["input_tokens"] == 24
