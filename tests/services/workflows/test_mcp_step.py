"""``mcp`` steps and ``/api/v1/mcp/servers``, against the reference MCP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrion.platform import create_embedded_app
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings, user_headers
from tests.fixtures.lifespan import in_process
from tests.fixtures.mcp_peer import stdio_command
from tests.services.workflows.helpers import run, step


@pytest.fixture
async def mcp_client(
    tmp_path: Path, database_url: str, everything: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The platform with the reference server configured as ``everything`` (stdio)."""
    settings = make_settings(
        tmp_path,
        database_url,
        mcp={"servers": {"everything": {"command": stdio_command(everything)}}},
    )
    application = create_embedded_app(settings)
    async with in_process(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture
async def headers(mcp_client: httpx.AsyncClient) -> dict[str, str]:
    tokens = await login(mcp_client, ADMIN_EMAIL, ADMIN_PASSWORD)
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def mcp_step(step_id: str, server: str, tool: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "mcp", "with": {"server": server, "tool": tool, **extra}}


async def test_mcp_steps_call_the_reference_server_over_stdio(
    mcp_client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    execution = await run(
        mcp_client,
        headers,
        [
            mcp_step("echo", "everything", "echo", arguments={"message": "{{ inputs.word }}"}),
            mcp_step("sum", "everything", "get-sum", arguments={"a": 2, "b": "{{ inputs.n }}"}),
            mcp_step(
                "weather", "everything", "get-structured-content", arguments={"location": "Chicago"}
            ),
        ],
        {"word": "hello", "n": 40},
        outputs={
            "echo": "{{ steps.echo.output.content[0].text }}",
            "sum": "{{ steps.sum.output.content[0].text }}",
        },
    )
    assert execution["status"] == "succeeded", execution
    assert execution["outputs"] == {"echo": "Echo: hello", "sum": "The sum of 2 and 40 is 42."}
    assert step(execution, "echo")["output"] == {
        "content": [{"type": "text", "text": "Echo: hello"}],
        "is_error": False,
    }
    weather = step(execution, "weather")["output"]
    assert set(weather["structured"]) == {"temperature", "conditions", "humidity"}
    assert weather["is_error"] is False


async def test_tool_errors_are_outputs_and_unknown_servers_fail(
    mcp_client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    execution = await run(
        mcp_client, headers, [mcp_step("bad", "everything", "get-sum", arguments={"a": "x"})]
    )
    assert execution["status"] == "succeeded"
    output = step(execution, "bad")["output"]
    assert output["is_error"] is True
    assert "Invalid" in output["content"][0]["text"]

    missing = await run(mcp_client, headers, [mcp_step("lost", "nowhere", "echo")])
    assert missing["status"] == "failed"
    assert "no MCP server named 'nowhere'" in step(missing, "lost")["error"]["message"]


async def test_with_is_checked_when_the_workflow_is_saved(
    mcp_client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = {"name": "typo", "steps": [{"id": "a", "type": "mcp", "with": {"server": "x"}}]}
    response = await mcp_client.post("/api/v1/workflows", json=body, headers=headers)
    assert response.status_code == 422
    types = await mcp_client.get("/api/v1/workflows/step-types", headers=headers)
    mcp = next(t for t in types.json() if t["name"] == "mcp")
    assert mcp["with_schema"]["required"] == ["server", "tool"]


async def test_tenant_servers_are_urls_behind_the_private_range_guard(
    mcp_client: httpx.AsyncClient, headers: dict[str, str], everything_http: str
) -> None:
    url = f"{everything_http}/mcp"
    created = await mcp_client.post(
        "/api/v1/mcp/servers",
        json={"name": "mine", "url": url, "headers": {"X-Token": "s3cret"}},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/api/v1/mcp/servers/mine"
    assert created.json()["has_headers"] is True
    assert "s3cret" not in created.text

    listed = (await mcp_client.get("/api/v1/mcp/servers", headers=headers)).json()["data"]
    assert [(s["name"], s["scope"]) for s in listed] == [
        ("everything", "platform"),
        ("mine", "tenant"),
    ]
    tools = await mcp_client.get("/api/v1/mcp/servers/mine/tools", headers=headers)
    assert tools.status_code == 200, tools.text
    assert {"echo", "get-sum"} <= {t["name"] for t in tools.json()["data"]}

    execution = await run(
        mcp_client, headers, [mcp_step("sum", "mine", "get-sum", arguments={"a": 1, "b": 2})]
    )
    assert step(execution, "sum")["output"]["content"][0]["text"] == "The sum of 1 and 2 is 3."

    command = await mcp_client.post(
        "/api/v1/mcp/servers", json={"name": "spawn", "command": ["sh"]}, headers=headers
    )
    assert command.status_code == 422
    again = await mcp_client.post(
        "/api/v1/mcp/servers", json={"name": "mine", "url": url}, headers=headers
    )
    assert again.status_code == 409
    shadow = await mcp_client.post(
        "/api/v1/mcp/servers", json={"name": "everything", "url": url}, headers=headers
    )
    assert shadow.status_code == 409
    private = await mcp_client.post(
        "/api/v1/mcp/servers", json={"name": "lan", "url": "http://10.1.2.3/mcp"}, headers=headers
    )
    assert private.status_code == 422
    assert "not a public address" in private.json()["detail"]

    deleted = await mcp_client.delete("/api/v1/mcp/servers/mine", headers=headers)
    assert deleted.status_code == 204
    gone = await run(mcp_client, headers, [mcp_step("sum", "mine", "get-sum")])
    assert gone["status"] == "failed"


async def test_viewers_read_but_do_not_register_servers(
    mcp_client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    viewer = await user_headers(mcp_client, headers, email="viewer@example.com", roles=["viewer"])
    assert (await mcp_client.get("/api/v1/mcp/servers", headers=viewer)).status_code == 200
    refused = await mcp_client.post(
        "/api/v1/mcp/servers", json={"name": "x", "url": "https://example.com/mcp"}, headers=viewer
    )
    assert refused.status_code == 403
