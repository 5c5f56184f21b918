"""The platform's own MCP endpoint (``/mcp``), driven by the official Python MCP client
through the gateway, with a bearer token and with an API key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import user_headers
from tests.fixtures.definitions import DOUBLE_THEN_ADD
from tests.services.workflows.helpers import create_workflow


@asynccontextmanager
async def mcp_session(app: Any, headers: dict[str, str]) -> AsyncIterator[Client]:
    """An MCP client session on the gateway's /mcp, in-process."""
    transport = httpx2.ASGITransport(app=app)
    async with (
        httpx2.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        ) as http,
        Client(streamable_http_client("http://testserver/mcp", http_client=http)) as c,
    ):
        yield c


async def _workflows(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, str]:
    ids = {"double": await create_workflow(client, headers, **_without_steps(DOUBLE_THEN_ADD))}
    ids["boom"] = await create_workflow(
        client,
        headers,
        [{"id": "x", "type": "fail", "with": {"message": "it broke"}}],
        name="boom",
        description="Always fails.",
    )
    ids["draft"] = await create_workflow(
        client, headers, [{"id": "x", "type": "transform", "with": {}}], name="draft",
        status="draft",
    )  # fmt: skip
    return ids


def _without_steps(definition: dict[str, Any]) -> dict[str, Any]:
    rest = dict(definition)
    return {"steps": rest.pop("steps"), **rest}


def _text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def test_an_mcp_client_lists_and_runs_workflows(
    app: Any, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    ids = await _workflows(client, admin_headers)
    async with mcp_session(app, admin_headers) as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
        workflows = {name for name in tools if not name.startswith("template.")}
        assert workflows == {"double-then-add", "boom"}  # drafts are not tools
        double = tools["double-then-add"]
        assert double.input_schema == DOUBLE_THEN_ADD["inputs"]
        assert ids["double"] in (double.description or "")

        result = await mcp.call_tool("double-then-add", {"x": 20})
        assert result.is_error is False
        assert result.structured_content == {"result": 41}
        assert json.loads(result.content[0].text) == {"result": 41}  # type: ignore[union-attr]
        link = result.content[1]
        assert link.type == "resource_link"
        execution_uri = str(link.uri)  # type: ignore[union-attr]

        failed = await mcp.call_tool("boom", {})
        assert failed.is_error is True
        assert "it broke" in _text(failed)

        invalid = await mcp.call_tool("double-then-add", {"x": "twenty"})
        assert invalid.is_error is True
        assert "inputs" in _text(invalid)

        with pytest.raises(MCPError, match="unknown tool"):
            await mcp.call_tool("draft", {})

        read = await mcp.read_resource(execution_uri)
        execution = json.loads(read.contents[0].text)  # type: ignore[union-attr]
        assert execution["status"] == "succeeded"
        assert execution["outputs"] == {"result": 41}
        listed = await mcp.list_resources()
        assert execution_uri in {str(r.uri) for r in listed.resources}
        templates = await mcp.list_resource_templates()
        assert (
            templates.resource_templates[0].uri_template
            == "orchestrion://executions/{execution_id}"
        )

    runs = await client.get(
        "/api/v1/executions", params={"workflow_id": ids["double"]}, headers=admin_headers
    )
    assert [e["outputs"] for e in runs.json()["data"]] == [{"result": 41}]


async def test_api_keys_see_the_tools_their_scopes_allow(
    app: Any, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await _workflows(client, admin_headers)
    keys = {}
    for name, scopes in (
        ("runner", ["workflows:read", "executions:run", "executions:read"]),
        ("reader", ["workflows:read", "executions:read"]),
    ):
        created = await client.post(
            "/api/v1/auth/api-keys", json={"name": name, "scopes": scopes}, headers=admin_headers
        )
        assert created.status_code == 201, created.text
        keys[name] = created.json()["key"]

    async with mcp_session(app, {"X-API-Key": keys["runner"]}) as mcp:
        assert {t.name for t in (await mcp.list_tools()).tools} == {"double-then-add", "boom"}
        result = await mcp.call_tool("double-then-add", {"x": 1})
        assert result.structured_content == {"result": 3}

    async with mcp_session(app, {"X-API-Key": keys["reader"]}) as mcp:
        assert (await mcp.list_tools()).tools == []
        with pytest.raises(MCPError, match="executions:run"):
            await mcp.call_tool("double-then-add", {"x": 1})
        # Reading executions is still allowed.
        assert (await mcp.list_resources()).resources


async def test_principals_see_only_their_tenant_and_their_rights(
    app: Any, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await _workflows(client, admin_headers)
    tenant = await client.post(
        "/api/v1/auth/tenants", json={"name": "other"}, headers=admin_headers
    )
    assert tenant.status_code == 201, tenant.text
    outsider = await user_headers(
        client, admin_headers, email="o@example.com", roles=["editor"],
        tenant_id=tenant.json()["id"],
    )  # fmt: skip
    async with mcp_session(app, outsider) as mcp:
        # Only the public starter templates: none of the first tenant's workflows.
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert names
        assert all(name.startswith("template.") for name in names)
        with pytest.raises(MCPError, match="unknown tool"):
            await mcp.call_tool("double-then-add", {"x": 1})
    viewer = await user_headers(client, admin_headers, email="v@example.com", roles=["viewer"])
    async with mcp_session(app, viewer) as mcp:
        assert (await mcp.list_tools()).tools == []


async def test_mcp_needs_credentials(client: httpx.AsyncClient) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    anonymous = await client.post("/mcp", json=initialize, headers=accept)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    forged = await client.post(
        "/mcp", json=initialize, headers={**accept, "Authorization": "Bearer not-a-token"}
    )
    assert forged.status_code == 401


async def test_templates_are_tools_that_make_a_workflow_once_and_run_it(
    app: Any, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    records = [{"id": "a", "value": 1}, {"id": "b", "value": 2}]
    async with mcp_session(app, admin_headers) as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
        reshaping = tools["template.json-reshaping"]
        schema = reshaping.input_schema
        assert schema["required"] == ["parameters"]
        assert set(schema["properties"]["parameters"]["properties"]) == {
            "key_field",
            "value_field",
            "large_above",
        }
        arguments = {"parameters": {"large_above": 1}, "inputs": {"records": records}}
        first = await mcp.call_tool("template.json-reshaping", arguments)
        assert first.is_error is False, _text(first)
        assert first.structured_content == {
            "keys": ["a", "b"],
            "values": [1, 2],
            "count": 2,
            "size": "large",
        }
        # The same parameters run the workflow made the first time; others make another.
        again = await mcp.call_tool("template.json-reshaping", arguments)
        assert again.structured_content == first.structured_content
        small = {"parameters": {"large_above": 5}, "inputs": {"records": records}}
        assert (await mcp.call_tool("template.json-reshaping", small)).structured_content == {
            "keys": ["a", "b"],
            "values": [1, 2],
            "count": 2,
            "size": "small",
        }
        bad = await mcp.call_tool("template.json-reshaping", {"parameters": {"large_above": -1}})
        assert bad.is_error is True
        assert "large_above" in _text(bad)

    made = await client.get("/api/v1/workflows", params={"limit": 100}, headers=admin_headers)
    names = [w["name"] for w in made.json()["data"] if w["name"].startswith("JSON reshaping")]
    assert len(names) == 2
    assert all(name.startswith("JSON reshaping (") for name in names)
    template = await client.get(
        "/api/v1/templates", params={"q": "JSON reshaping"}, headers=admin_headers
    )
    assert template.json()["data"][0]["installs"] == 2


async def test_an_api_key_without_template_scopes_sees_no_template_tools(
    app: Any, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await client.post(
        "/api/v1/auth/api-keys",
        json={"name": "runner", "scopes": ["workflows:read", "executions:run"]},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    async with mcp_session(app, {"X-API-Key": created.json()["key"]}) as mcp:
        names = [tool.name for tool in (await mcp.list_tools()).tools]
        assert not [name for name in names if name.startswith("template.")]
        with pytest.raises(MCPError, match="unknown tool"):
            await mcp.call_tool("template.json-reshaping", {"parameters": {}})
