"""MCP tools in ``agent`` and ``llm`` steps: the reference MCP server, a loopback model."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from orchestrion.settings import Settings, open_database
from tests.conftest import make_settings
from tests.fixtures.llm import LlmServer, llm_server
from tests.fixtures.mcp_peer import stdio_command
from tests.services.workflows.helpers import run, step

__all__ = ["llm_server"]


@pytest.fixture
def key() -> str:
    """This test's provider key (the loopback server keeps counters per key)."""
    return uuid.uuid4().hex


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, llm_server: LlmServer, key: str, everything: Path
) -> Settings:
    """Provider `oa` on loopback and the reference MCP server as `everything` (stdio)."""
    providers = {"oa": {"kind": "openai", "base_url": llm_server.openai(key)}}
    return make_settings(
        tmp_path,
        database_url,
        llm={"providers": providers, "max_retries": 0},
        mcp={"servers": {"everything": {"command": stdio_command(everything)}}},
    )


def agent(tools: list[dict[str, Any]], step_type: str = "agent") -> dict[str, Any]:
    """An agent (or llm) step on `oa` offered ``tools``."""
    return {
        "id": "think",
        "type": step_type,
        "with": {"provider": "oa", "model": "m", "prompt": "What is 2+40?", "tools": tools},
    }


async def test_agent_calls_an_mcp_tool_and_the_model_reads_its_answer(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    llm_server.state.script(
        key,
        {"tool_calls": [{"name": "get-sum", "arguments": {"a": 2, "b": 40}},
                        {"name": "shout", "arguments": {"message": "done"}}]},
        {"chunks": ["2+40 is ", "42."]},
    )  # fmt: skip
    tools = [
        {"mcp": "everything", "tool": "get-sum"},
        {"mcp": "everything", "tool": "echo", "name": "shout", "description": "Say it back"},
    ]
    done = await run(
        client, admin_headers, [agent(tools)], outputs={"o": "{{ steps.think.output }}"}
    )
    assert done["status"] == "succeeded", done
    out = done["outputs"]["o"]
    assert out["text"] == "2+40 is 42."
    assert out["iterations"] == 2
    assert out["tool_calls"] == [
        {"id": "call_0", "name": "get-sum", "arguments": {"a": 2, "b": 40},
         "result": "The sum of 2 and 40 is 42."},
        {"id": "call_1", "name": "shout", "arguments": {"message": "done"},
         "result": "Echo: done"},
    ]  # fmt: skip
    first, second = llm_server.state.bodies[key]
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert set(offered) == {"get-sum", "shout"}
    assert offered["shout"]["description"] == "Say it back"
    assert set(offered["get-sum"]["parameters"]["properties"]) == {"a", "b"}
    # The tools really ran: their answers are in the model's next request.
    results = [m for m in second["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in results] == [
        ("call_0", "The sum of 2 and 40 is 42."),
        ("call_1", "Echo: done"),
    ]


async def test_a_whole_server_is_offered_and_llm_steps_return_calls_unrun(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    llm_server.state.script(key, {"tool_calls": [{"name": "echo", "arguments": {"message": "x"}}]})
    done = await run(
        client, admin_headers, [agent([{"mcp": "everything"}], "llm")],
        outputs={"calls": "{{ steps.think.output.tool_calls }}"},
    )  # fmt: skip
    assert done["status"] == "succeeded", done
    assert done["outputs"]["calls"] == [
        {"id": "call_0", "name": "echo", "arguments": {"message": "x"}}
    ]
    names = {t["function"]["name"] for t in llm_server.state.bodies[key][0]["tools"]}
    assert {"echo", "get-sum", "get-structured-content"} <= names
    assert llm_server.state.calls[key] == 1


async def test_tool_errors_reach_the_model_and_unknown_servers_fail_the_step(
    client: httpx.AsyncClient, admin_headers: dict[str, str], llm_server: LlmServer, key: str
) -> None:
    llm_server.state.script(
        key, {"tool_calls": [{"name": "get-sum", "arguments": {"a": "x"}}]}, {"chunks": ["Oops."]}
    )
    done = await run(
        client, admin_headers, [agent([{"mcp": "everything", "tool": "get-sum"}])],
        outputs={"o": "{{ steps.think.output }}"},
    )  # fmt: skip
    assert done["status"] == "succeeded", done
    call = done["outputs"]["o"]["tool_calls"][0]
    assert "result" not in call
    assert call["error"].startswith("everything/get-sum: ")
    told = llm_server.state.bodies[key][1]["messages"][-1]
    assert told["role"] == "tool"
    assert "error" in told["content"]

    for tools, message in [
        ([{"mcp": "nowhere"}], "no MCP server named 'nowhere'"),
        ([{"mcp": "everything", "tool": "nope"}], "has no tool named 'nope'"),
    ]:
        failed = await run(client, admin_headers, [agent(tools)])
        assert failed["status"] == "failed"
        assert message in step(failed, "think")["error"]["message"]
    assert llm_server.state.calls[key] == 2  # refused before calling the model


async def test_tenant_servers_are_offered_as_tools(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    llm_server: LlmServer,
    key: str,
    everything_http: str,
    settings: Settings,
) -> None:
    created = await client.post(
        "/api/v1/mcp/servers",
        json={"name": "mine", "url": f"{everything_http}/mcp"},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    llm_server.state.script(
        key, {"tool_calls": [{"name": "get-sum", "arguments": {"a": 1, "b": 2}}]}, {"chunks": ["3"]}
    )
    done = await run(
        client, admin_headers, [agent([{"mcp": "mine", "tool": "get-sum"}])],
        outputs={"o": "{{ steps.think.output.tool_calls[0].result }}"},
    )  # fmt: skip
    assert done["status"] == "succeeded", done
    assert done["outputs"] == {"o": "The sum of 1 and 2 is 3."}

    # A URL that now leads into a private network (as a changed DNS answer would) is
    # refused when the tools are listed, as for `mcp` steps.
    database = open_database(settings)
    async with database.session() as session:
        await session.execute(
            text("UPDATE wf_mcp_servers SET url = 'http://10.1.2.3/mcp' WHERE name = 'mine'")
        )
        await session.commit()
    await database.dispose()
    failed = await run(client, admin_headers, [agent([{"mcp": "mine"}])])
    assert failed["status"] == "failed"
    assert "not a public address" in step(failed, "think")["error"]["message"]
    assert llm_server.state.calls[key] == 2
