"""``llm`` and ``agent`` steps on AWS Bedrock Converse, against a loopback runtime."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrion.settings import Settings
from tests.conftest import make_settings
from tests.fixtures.llm import LlmServer, llm_server
from tests.services.workflows.helpers import create_workflow, get, run, start, step

__all__ = ["llm_server"]
PRICES = {"test-model": {"input": 2.0, "output": 10.0}}
#: An inference-profile id: priced as `test-model` once `us.` and `anthropic.` are stripped.
MODEL = "us.anthropic.test-model-v1:0"


@pytest.fixture
def key() -> str:
    """This test's runtime key (the loopback server keeps counters per key)."""
    return uuid.uuid4().hex


@pytest.fixture
def settings(tmp_path: Path, database_url: str, llm_server: LlmServer, key: str) -> Settings:
    """Provider `br`: Bedrock on loopback, signed with static keys, in eu-west-3."""
    providers = {
        "br": {
            "kind": "bedrock",
            "base_url": llm_server.bedrock(key),
            "api_key": "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG",
            "region": "eu-west-3",
        }
    }
    llm = {"providers": providers, "pricing": PRICES, "max_retries": 2}
    return make_settings(tmp_path, database_url, llm=llm)


def bedrock_step(step_id: str = "ask", **with_: Any) -> dict[str, Any]:
    """An llm step on `br` with a prompt, unless overridden."""
    return {
        "id": step_id,
        "type": "llm",
        "with": {"provider": "br", "model": MODEL, "prompt": "Say hello", **with_},
    }


def cost(input_tokens: int, output_tokens: int) -> float:
    """What the pricing table says these tokens of test-model cost."""
    price = PRICES["test-model"]
    return round((input_tokens * price["input"] + output_tokens * price["output"]) / 1e6, 9)


async def test_bedrock_step_streams_tokens_then_text_usage_and_cost(
    client: httpx.AsyncClient,
    live_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    llm_server: LlmServer,
    key: str,
) -> None:
    gate = llm_server.state.gates[key] = threading.Event()
    llm_server.state.script(key, {"input_tokens": 21, "output_tokens": 6})
    ask = bedrock_step(system="Be brief.", temperature=0.3, max_tokens=40)
    workflow = await create_workflow(
        client, admin_headers, [ask], outputs={"o": "{{ steps.ask.output }}"}
    )
    started = await start(client, admin_headers, workflow)
    kinds: list[str] = []
    tokens: list[str] = []
    url = f"/api/v1/executions/{started['id']}/stream"
    async with live_client.stream("GET", url, headers=admin_headers) as response:
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
                if name == "step.started":
                    gate.set()  # the runtime answers only once someone watches
            elif line.startswith("data: "):
                kinds.append(name)
                if name == "token":
                    tokens.append(json.loads(line[6:])["text"])
                if name == "execution.succeeded":
                    break
    assert tokens == ["Hel", "lo", ",", " world", "!"]
    assert kinds.index("token") > kinds.index("step.started")
    assert max(i for i, n in enumerate(kinds) if n == "token") < kinds.index("step.succeeded")

    done = await get(client, admin_headers, started["id"])
    out = done["outputs"]["o"]
    assert out["text"] == "Hello, world!"
    assert out["model"] == MODEL
    assert out["provider"] == "br"
    assert out["finish_reason"] == "end_turn"
    assert out["usage"] == {
        "input_tokens": 21, "output_tokens": 6, "cost_usd": cost(21, 6), "estimated": False
    }  # fmt: skip
    assert done["usage"] == {"input_tokens": 21, "output_tokens": 6, "cost_usd": cost(21, 6)}
    body = llm_server.state.bodies[key][0]
    assert body == {
        "modelId": MODEL,
        "messages": [{"role": "user", "content": [{"text": "Say hello"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 40, "temperature": 0.3},
    }
    authorization = llm_server.state.headers[key][0]["authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-3/bedrock/aws4_request" in authorization


async def test_throttling_is_retried_and_validation_errors_are_not(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    # A 429 ThrottlingException, then a throttlingException inside the event stream.
    llm_server.state.script(key, {"status": 429}, {"stream_exception": "throttlingException"})
    done = await run(
        client, admin_headers, [bedrock_step()], outputs={"t": "{{ steps.ask.output.text }}"}
    )
    assert done["status"] == "succeeded", done
    assert done["outputs"] == {"t": "Hello, world!"}
    assert llm_server.state.calls[key] == 3
    assert done["usage"]["cost_usd"] == cost(12, 5)  # only the answer that came through

    llm_server.state.script(key, {"status": 400, "message": "The model id is invalid."})
    failed = await run(client, admin_headers, [bedrock_step()])
    assert failed["status"] == "failed"
    message = step(failed, "ask")["error"]["message"]
    assert "ValidationException: The model id is invalid." in message
    assert llm_server.state.calls[key] == 4


async def test_agent_tool_calls_fall_back_to_converse_when_streaming_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    tool = await create_workflow(
        client, admin_headers,
        [{"id": "sum", "type": "transform", "with": {"total": "{{ inputs.a + inputs.b }}"}}],
        name="adder", description="Add two numbers",
        inputs={"type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
        outputs={"total": "{{ steps.sum.output.total }}"},
    )  # fmt: skip
    llm_server.state.script(
        key,
        {"no_stream": True},  # "doesn't support tool use in streaming mode": Converse then
        {"tool_calls": [{"name": "adder", "arguments": {"a": 2, "b": 3}}]},
        {"chunks": ["It is ", "5."]},
    )
    agent = {
        "id": "think", "type": "agent",
        "with": {"provider": "br", "model": MODEL, "prompt": "2+3?",
                 "tools": [{"workflow_id": tool}], "max_iterations": 3},
    }  # fmt: skip
    done = await run(client, admin_headers, [agent], outputs={"o": "{{ steps.think.output }}"})
    assert done["status"] == "succeeded", done
    out = done["outputs"]["o"]
    assert out["text"] == "It is 5."
    assert out["tool_calls"][0]["name"] == "adder"
    assert out["tool_calls"][0]["result"] == {"total": 5}
    first, whole, last = llm_server.state.bodies[key]
    assert first == whole  # the same request, sent to /converse
    spec = first["toolConfig"]["tools"][0]["toolSpec"]
    assert spec["name"] == "adder"
    assert spec["inputSchema"]["json"]["properties"]["a"] == {"type": "integer"}
    assistant, result = last["messages"][1:]
    assert assistant == {
        "role": "assistant",
        "content": [{"toolUse": {"toolUseId": "tooluse_0", "name": "adder",
                                 "input": {"a": 2, "b": 3}}}],
    }  # fmt: skip
    assert result == {
        "role": "user",
        "content": [{"toolResult": {"toolUseId": "tooluse_0",
                                    "content": [{"text": '{"total": 5}'}]}}],
    }  # fmt: skip
    assert done["usage"]["input_tokens"] == 24  # two answered model calls
