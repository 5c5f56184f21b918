"""``llm`` and ``agent`` steps against loopback providers: text, usage, cost, budgets."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from orchestrion.settings import Settings, open_database
from tests.conftest import make_settings, user_headers
from tests.fixtures.llm import LlmServer, llm_server
from tests.fixtures.upstream import Upstream
from tests.services.workflows.helpers import create_workflow, run, start, wait_until

__all__ = ["llm_server"]
PRICES = {"test-model": {"input": 2.0, "output": 10.0}, "cheap": {"input": 1.0, "output": 1.0}}


@pytest.fixture
def key() -> str:
    """This test's provider key (the loopback server keeps counters per key)."""
    return uuid.uuid4().hex


@pytest.fixture
def settings(tmp_path: Path, database_url: str, llm_server: LlmServer, key: str) -> Settings:
    """Providers `oa` (OpenAI-compatible) and `an` (Anthropic) on loopback, with prices."""
    providers = {
        "oa": {"kind": "openai", "base_url": llm_server.openai(key), "api_key": "sk-oa"},
        "an": {"kind": "anthropic", "base_url": llm_server.anthropic(key), "api_key": "sk-an"},
    }
    llm = {"providers": providers, "pricing": PRICES, "max_retries": 1}
    return make_settings(tmp_path, database_url, llm=llm)


def llm_step(step_id: str = "ask", **with_: Any) -> dict[str, Any]:
    """An llm step on `oa`/test-model with a prompt, unless overridden."""
    return {
        "id": step_id,
        "type": "llm",
        "with": {"provider": "oa", "model": "test-model", "prompt": "Say hello", **with_},
    }


def cost(input_tokens: int, output_tokens: int, model: str = "test-model") -> float:
    """What the pricing table says these tokens cost."""
    price = PRICES[model]
    return round((input_tokens * price["input"] + output_tokens * price["output"]) / 1e6, 9)


async def test_openai_step_streams_text_usage_and_cost(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    step = llm_step(
        system="Be brief.", temperature=0.2, max_tokens=50, prompt="Hi {{ inputs.who }}"
    )
    done = await run(
        client, admin_headers, [step], {"who": "Ada"}, outputs={"a": "{{ steps.ask.output.text }}"}
    )
    assert done["status"] == "succeeded", done
    body = llm_server.state.bodies[key][0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi Ada"},
    ]
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 50
    assert llm_server.state.headers[key][0]["authorization"] == "Bearer sk-oa"
    assert done["outputs"] == {"a": "Hello, world!"}
    assert done["usage"] == {"input_tokens": 12, "output_tokens": 5, "cost_usd": cost(12, 5)}
    events = await client.get(f"/api/v1/executions/{done['id']}/events", headers=admin_headers)
    succeeded = next(e for e in events.json()["data"] if e["type"] == "step.succeeded")
    output = succeeded["data"]["output"]
    assert output["text"] == "Hello, world!"
    assert output["model"] == "test-model"
    assert output["tool_calls"] == []
    assert output["provider"] == "oa"
    assert output["usage"] == {
        "input_tokens": 12, "output_tokens": 5, "cost_usd": cost(12, 5), "estimated": False
    }  # fmt: skip


async def test_anthropic_step_with_usage_from_message_delta(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    llm_server.state.script(key, {"input_tokens": 30, "output_tokens": 7})
    step = llm_step(provider="an", system="Terse.", messages=[{"role": "user", "content": "Hi"}])
    step["with"].pop("prompt")
    done = await run(client, admin_headers, [step], outputs={"o": "{{ steps.ask.output }}"})
    assert done["status"] == "succeeded", done
    body = llm_server.state.bodies[key][0]
    headers = llm_server.state.headers[key][0]
    assert headers["x-api-key"] == "sk-an"
    assert headers["anthropic-version"] == "2023-06-01"
    assert body["system"] == "Terse."
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["stream"] is True
    assert body["max_tokens"] == 4096
    out = done["outputs"]["o"]
    assert out["text"] == "Hello, world!"
    assert out["finish_reason"] == "end_turn"
    assert out["usage"]["input_tokens"] == 30
    assert out["usage"]["output_tokens"] == 7
    assert done["usage"]["cost_usd"] == cost(30, 7)


async def test_missing_usage_is_counted_and_flagged_estimated(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    llm_server.state.script(key, {"usage": False, "chunks": ["abcdefgh"]})
    done = await run(
        client, admin_headers, [llm_step()], outputs={"u": "{{ steps.ask.output.usage }}"}
    )
    usage = done["outputs"]["u"]
    assert usage["estimated"] is True
    assert usage["output_tokens"] == 2  # 8 bytes at 4 bytes a token
    assert usage["input_tokens"] >= 1
    assert usage["cost_usd"] == cost(usage["input_tokens"], 2)


async def test_response_schema_gives_validated_data_or_fails(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    llm_server.state.script(key, {"chunks": ['{"n":', " 3}"]}, {"chunks": ['{"n": "x"}']})
    done = await run(
        client, admin_headers, [llm_step(response_schema=schema)],
        outputs={"d": "{{ steps.ask.output.data }}"},
    )  # fmt: skip
    assert done["outputs"] == {"d": {"n": 3}}
    body = llm_server.state.bodies[key][0]
    assert body["response_format"]["json_schema"]["schema"] == schema
    failed = await run(client, admin_headers, [llm_step(response_schema=schema)])
    assert failed["status"] == "failed"
    assert "does not match response_schema" in failed["error"]["message"]
    assert failed["usage"]["output_tokens"] == 5  # the failed attempt's tokens count


async def test_429_retry_after_is_honoured_then_fallback_model(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    llm_server.state.script(key, {"status": 429, "retry_after": "0.2"})
    done = await run(client, admin_headers, [llm_step()])
    assert done["status"] == "succeeded"
    assert llm_server.state.calls[key] == 2
    # Two 503s exhaust the retries of test-model; the fallback answers.
    llm_server.state.script(key, {"status": 503}, {"status": 503, "retry_after": "0"})
    done = await run(
        client, admin_headers, [llm_step(fallback=["cheap"])],
        outputs={"m": "{{ steps.ask.output.model }}"},
    )  # fmt: skip
    assert done["status"] == "succeeded", done
    assert done["outputs"] == {"m": "cheap"}
    assert [b["model"] for b in llm_server.state.bodies[key][2:]] == [
        "test-model", "test-model", "cheap"
    ]  # fmt: skip
    assert done["usage"]["cost_usd"] == cost(12, 5, "cheap")
    # A 400 is not retried and, without fallback, fails the step for good.
    llm_server.state.script(key, {"status": 400})
    failed = await run(client, admin_headers, [llm_step()])
    assert failed["status"] == "failed"
    assert "answered 400" in failed["error"]["message"]
    assert llm_server.state.calls[key] == 6


async def test_retry_after_a_later_failure_does_not_call_the_provider_again(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    llm_server: LlmServer,
    upstream: Upstream,
    key: str,
) -> None:
    later = {
        "id": "later", "type": "http", "needs": ["ask"],
        "with": {"url": f"{upstream.url}/flaky/{key}?fail=1", "method": "POST"},
    }  # fmt: skip
    failed = await run(client, admin_headers, [llm_step(), later])
    assert failed["status"] == "failed"
    assert llm_server.state.calls[key] == 1
    retried = await client.post(f"/api/v1/executions/{failed['id']}/retry", headers=admin_headers)
    assert retried.status_code == 200, retried.text
    done = await wait_until(
        client, admin_headers, failed["id"], lambda e: e["status"] == "succeeded"
    )
    assert llm_server.state.calls[key] == 1  # the recorded llm step was reused
    assert done["usage"] == failed["usage"] == {
        "input_tokens": 12, "output_tokens": 5, "cost_usd": cost(12, 5)
    }  # fmt: skip


async def test_usage_sums_for_each_loops_and_sub_workflows(
    client: httpx.AsyncClient, admin_headers: dict[str, str], key: str
) -> None:
    child = await create_workflow(client, admin_headers, [llm_step()], name="child")
    steps = [
        {**llm_step("each"), "for_each": "{{ [1, 2, 3] }}"},
        {"id": "again", "type": "loop", "with": {"max_iterations": 2, "body": llm_step()}},
        {"id": "sub", "type": "sub_workflow", "with": {"workflow_id": child}},
    ]
    done = await run(client, admin_headers, steps)
    assert done["status"] == "succeeded", done
    assert done["usage"] == {"input_tokens": 72, "output_tokens": 30, "cost_usd": cost(72, 30)}
    by_workflow = await client.get("/api/v1/usage?group_by=workflow", headers=admin_headers)
    rows = {r["workflow_id"]: r for r in by_workflow.json()["data"]}
    assert rows[child]["input_tokens"] == 12
    assert rows[done["workflow_id"]]["input_tokens"] == 60


async def test_budget_stops_a_run_with_a_problem_naming_it(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    limit = cost(12, 5) * 1.5  # room for one call, not two
    created = await client.post(
        "/api/v1/budgets",
        json={"scope": "tenant", "period": "day", "limit_usd": limit, "name": "daily"},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    budget = created.json()
    # Checked before each call: what was spent plus what this call may cost (its
    # max_tokens of output), so the second call is refused rather than overspending.
    first = await run(client, admin_headers, [llm_step(max_tokens=10)])
    assert first["status"] == "succeeded"
    second = await run(client, admin_headers, [llm_step(max_tokens=10)])
    assert second["status"] == "failed"
    assert llm_server.state.calls[key] == 1  # stopped before calling
    problem = second["error"]["details"]["problem"]
    assert problem["budget_id"] == budget["id"]
    assert problem["status"] == 409
    assert problem["title"] == "Budget exceeded"
    assert "'daily'" in problem["detail"]
    listed = await client.get("/api/v1/budgets", headers=admin_headers)
    assert listed.json()["data"][0]["spent_usd"] == cost(12, 5)
    deleted = await client.delete(f"/api/v1/budgets/{budget['id']}", headers=admin_headers)
    assert deleted.status_code == 204
    assert (await run(client, admin_headers, [llm_step()]))["status"] == "succeeded"


async def test_execution_budget_counts_max_tokens_before_the_call(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    response = await client.post(
        "/api/v1/budgets", json={"scope": "execution", "limit_usd": 0.001}, headers=admin_headers
    )
    assert response.status_code == 201, response.text
    # 1,000 output tokens at 10 USD per million may cost 0.01 USD: refused up front.
    failed = await run(client, admin_headers, [llm_step(max_tokens=1000)])
    assert failed["status"] == "failed"
    assert llm_server.state.calls[key] == 0
    assert failed["error"]["details"]["problem"]["budget_id"] == response.json()["id"]
    assert (await run(client, admin_headers, [llm_step(max_tokens=10)]))["status"] == "succeeded"


async def test_budget_input_is_checked(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    bad = await client.post(
        "/api/v1/budgets", json={"scope": "workflow", "limit_usd": 1}, headers=admin_headers
    )
    assert bad.status_code == 422
    viewer = await user_headers(client, admin_headers, email="v@example.com", roles=["viewer"])
    denied = await client.post(
        "/api/v1/budgets", json={"scope": "tenant", "limit_usd": 1}, headers=viewer
    )
    assert denied.status_code == 403


async def test_usage_grouped_by_model_and_day(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    await run(client, admin_headers, [llm_step(), llm_step("b", model="cheap", provider="an")])
    by_model = (await client.get("/api/v1/usage?group_by=model", headers=admin_headers)).json()
    assert [r["model"] for r in by_model["data"]] == ["cheap", "test-model"]
    assert by_model["total"]["cost_usd"] == round(cost(12, 5) + cost(12, 5, "cheap"), 9)
    by_day = (await client.get("/api/v1/usage?group_by=day", headers=admin_headers)).json()
    assert len(by_day["data"]) == 1
    assert len(by_day["data"][0]["day"]) == 10
    assert by_day["data"][0]["input_tokens"] == 24
    bad = await client.get("/api/v1/usage?group_by=colour", headers=admin_headers)
    assert bad.status_code == 400


async def test_tenant_providers_keys_are_write_only_and_encrypted(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    llm_server: LlmServer,
    key: str,
    settings: Settings,
) -> None:
    body = {
        "name": "mine",
        "kind": "openai",
        "base_url": llm_server.openai(key),
        "api_key": "sk-tenant-secret",
    }
    created = await client.post("/api/v1/llm/providers", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    assert "api_key" not in created.json()
    assert created.json()["has_api_key"] is True
    assert "sk-tenant-secret" not in created.text
    again = await client.post("/api/v1/llm/providers", json=body, headers=admin_headers)
    assert again.status_code == 409
    listed = await client.get("/api/v1/llm/providers", headers=admin_headers)
    assert "sk-tenant-secret" not in listed.text
    assert {p["name"] for p in listed.json()["platform"]} == {"oa", "an"}
    database = open_database(settings)
    async with database.session() as session:
        stored = (await session.execute(text("SELECT api_key FROM llm_providers"))).scalar_one()
    await database.dispose()
    assert stored
    assert "sk-tenant-secret" not in stored
    done = await run(client, admin_headers, [llm_step(provider="mine")])
    assert done["status"] == "succeeded", done
    assert llm_server.state.headers[key][-1]["authorization"] == "Bearer sk-tenant-secret"
    provider_id = created.json()["id"]
    gone = await client.delete(f"/api/v1/llm/providers/{provider_id}", headers=admin_headers)
    assert gone.status_code == 204
    failed = await run(client, admin_headers, [llm_step(provider="mine")])
    assert failed["status"] == "failed"
    assert "no LLM provider named 'mine'" in failed["error"]["message"]


async def test_tenant_provider_in_a_private_range_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {"name": "lan", "kind": "openai", "base_url": "http://10.1.2.3:8080/v1"}
    created = await client.post("/api/v1/llm/providers", json=body, headers=admin_headers)
    assert created.status_code == 201
    failed = await run(client, admin_headers, [llm_step(provider="lan")])
    assert failed["status"] == "failed"
    assert "not a public address" in failed["error"]["message"]


@pytest.mark.parametrize(
    "base_url",
    ["http://100.100.100.200/v1", "http://[2002:a9fe:a9fe::1]/v1", "http://0x7f.1:8080/v1"],
)
async def test_tenant_provider_outside_the_public_internet_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], base_url: str
) -> None:
    """Shared address space, 6to4 of link-local and odd IPv4 were let through before."""
    body = {"name": "meta", "kind": "openai", "base_url": base_url}
    created = await client.post("/api/v1/llm/providers", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    failed = await run(client, admin_headers, [llm_step(provider="meta")])
    assert failed["status"] == "failed"
    message = failed["error"]["message"]
    assert "not a public address" in message or "ambiguous notation" in message


@pytest.mark.parametrize("provider", ["oa", "an"])
async def test_agent_calls_a_workflow_tool_then_answers(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    llm_server: LlmServer,
    key: str,
    provider: str,
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
        key, {"tool_calls": [{"name": "adder", "arguments": {"a": 2, "b": 3}}]},
        {"chunks": ["It is 5."]},
    )  # fmt: skip
    step = {
        "id": "think", "type": "agent",
        "with": {"provider": provider, "model": "test-model", "prompt": "2+3?",
                 "tools": [{"workflow_id": tool}], "max_iterations": 3},
    }  # fmt: skip
    done = await run(client, admin_headers, [step], outputs={"o": "{{ steps.think.output }}"})
    assert done["status"] == "succeeded", done
    out = done["outputs"]["o"]
    assert out["text"] == "It is 5."
    assert out["iterations"] == 2
    assert out["tool_calls"][0]["name"] == "adder"
    assert out["tool_calls"][0]["result"] == {"total": 5}
    first, second = llm_server.state.bodies[key]
    if provider == "oa":
        assert first["tools"][0]["function"]["name"] == "adder"
        assert second["messages"][-1]["role"] == "tool"
        assert second["messages"][-1]["content"] == '{"total": 5}'
    else:
        assert first["tools"][0]["input_schema"]["properties"]["a"] == {"type": "integer"}
        assert second["messages"][-1]["content"][0]["type"] == "tool_result"
    assert done["usage"]["input_tokens"] == 24  # two model calls


async def test_agent_stops_after_max_iterations(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    loop = {"tool_calls": [{"name": "nothing", "arguments": {}}]}
    llm_server.state.script(key, loop, loop)
    step = {"id": "a", "type": "agent", "with": {"provider": "oa", "model": "test-model",
            "prompt": "go", "max_iterations": 2}}  # fmt: skip
    failed = await run(client, admin_headers, [step])
    assert failed["status"] == "failed"
    assert "within 2 model calls" in failed["error"]["message"]
    assert llm_server.state.calls[key] == 2


async def test_sse_stream_carries_tokens_before_the_step_ends(
    client: httpx.AsyncClient,
    live_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    llm_server: LlmServer,
    key: str,
) -> None:
    import threading

    gate = llm_server.state.gates[key] = threading.Event()
    workflow = await create_workflow(client, admin_headers, [llm_step()])
    started = await start(client, admin_headers, workflow)
    frames: list[tuple[str, str]] = []
    url = f"/api/v1/executions/{started['id']}/stream"
    async with live_client.stream("GET", url, headers=admin_headers) as response:
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
                if name == "step.started":
                    gate.set()
            elif line.startswith("data: "):
                frames.append((name, line[6:]))
                if name == "execution.succeeded":
                    break
    kinds = [n for n, _ in frames]
    tokens = [n for n in kinds if n == "token"]
    assert len(tokens) == 5, kinds
    assert kinds.index("token") > kinds.index("step.started")
    assert max(i for i, n in enumerate(kinds) if n == "token") < kinds.index("step.succeeded")


async def test_tokens_cost_and_budget_use_are_exported_as_metrics(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    tokens = {"provider": "oa", "model": "test-model"}
    inputs = REGISTRY.get_sample_value(
        "orchestrion_llm_tokens_total", {**tokens, "direction": "input"}
    )
    outputs = REGISTRY.get_sample_value(
        "orchestrion_llm_tokens_total", {**tokens, "direction": "output"}
    )
    spent = REGISTRY.get_sample_value("orchestrion_llm_cost_usd_total", tokens)
    refused = REGISTRY.get_sample_value(
        "orchestrion_llm_budget_exceeded_total", {"scope": "tenant"}
    )
    limit = cost(12, 5) * 1.5  # room for one call, not two
    created = await client.post(
        "/api/v1/budgets", json={"scope": "tenant", "limit_usd": limit}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    budget = {"budget": created.json()["id"], "scope": "tenant"}

    assert (await run(client, admin_headers, [llm_step(max_tokens=10)]))["status"] == "succeeded"
    assert (
        REGISTRY.get_sample_value("orchestrion_llm_tokens_total", {**tokens, "direction": "input"})
        == (inputs or 0) + 12
    )
    assert (
        REGISTRY.get_sample_value("orchestrion_llm_tokens_total", {**tokens, "direction": "output"})
        == (outputs or 0) + 5
    )
    assert REGISTRY.get_sample_value("orchestrion_llm_cost_usd_total", tokens) == pytest.approx(
        (spent or 0) + cost(12, 5)
    )
    # Checked before the first call: nothing spent yet.
    assert REGISTRY.get_sample_value("orchestrion_llm_budget_used_ratio", budget) == 0
    assert (await run(client, admin_headers, [llm_step(max_tokens=10)]))["status"] == "failed"
    # The second check saw the first call's cost: two thirds of the limit, and refused.
    assert REGISTRY.get_sample_value("orchestrion_llm_budget_used_ratio", budget) == pytest.approx(
        1 / 1.5
    )
    assert (
        REGISTRY.get_sample_value("orchestrion_llm_budget_exceeded_total", {"scope": "tenant"})
        == (refused or 0) + 1
    )
