"""The /mcp endpoint's life: the MCP server is made by the first request, once, and stops
with the app; outside the app's life the endpoint answers 503, not an error page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import ListToolsResult, Tool

from orchestrion.kernel.auth.identity import IDENTITY_HEADER, encode_identity
from orchestrion.kernel.auth.principal import Principal
from orchestrion.services.workflows.mcp.server import McpEndpoint

SECRET = b"test-mcp-endpoint-secret-0123456789"


def _headers() -> dict[str, str]:
    principal = Principal(subject="u", tenant_id="t", permissions=frozenset({"workflows:read"}))
    return {IDENTITY_HEADER: encode_identity(principal, SECRET)}


class _Made:
    """Makes real session managers around a one-tool server, and keeps them."""

    def __init__(self) -> None:
        self.managers: list[StreamableHTTPSessionManager] = []

    def __call__(self) -> StreamableHTTPSessionManager:
        async def list_tools(ctx: Any, params: Any) -> ListToolsResult:
            return ListToolsResult(tools=[Tool(name="echo", input_schema={"type": "object"})])

        server: Server[Any] = Server("test", on_list_tools=list_tools)
        manager = StreamableHTTPSessionManager(server, stateless=True, json_response=True)
        self.managers.append(manager)
        return manager


@asynccontextmanager
async def _session(endpoint: McpEndpoint) -> AsyncIterator[Client]:
    transport = httpx2.ASGITransport(app=endpoint)
    async with (
        httpx2.AsyncClient(
            transport=transport, base_url="http://testserver", headers=_headers()
        ) as http,
        Client(streamable_http_client("http://testserver/mcp", http_client=http)) as client,
    ):
        yield client


async def _post(endpoint: McpEndpoint, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=endpoint)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.post("/mcp", json={}, headers=headers)


async def test_the_server_is_made_by_the_first_request_and_stops_with_the_app() -> None:
    made = _Made()
    endpoint = McpEndpoint(made, SECRET)
    async with endpoint.running():
        await asyncio.sleep(0)
        assert made.managers == []  # starting the app makes no server
        async with _session(endpoint) as first, _session(endpoint) as second:
            listed = await asyncio.gather(first.list_tools(), second.list_tools())
        assert [[tool.name for tool in page.tools] for page in listed] == [["echo"], ["echo"]]
        async with _session(endpoint) as again:
            await again.list_tools()
        assert len(made.managers) == 1  # one server, made once, for every request
        manager = made.managers[0]
        assert endpoint.manager is manager
    # Leaving the app's life stops the manager (its task group is gone).
    assert endpoint.manager is None
    assert manager._task_group is None
    stopped = await _post(endpoint, _headers())
    assert stopped.status_code == 503
    assert stopped.headers["content-type"] == "application/problem+json"
    assert stopped.json()["detail"] == "the MCP server is not running"


async def test_an_app_that_never_serves_mcp_never_makes_the_server() -> None:
    made = _Made()
    endpoint = McpEndpoint(made, SECRET)
    async with endpoint.running():
        refused = await _post(endpoint, {})  # no identity: refused before the server
        assert refused.status_code == 401
    assert made.managers == []


async def test_a_server_that_cannot_be_made_answers_503() -> None:
    def broken() -> StreamableHTTPSessionManager:
        raise RuntimeError("no server today")

    endpoint = McpEndpoint(broken, SECRET)
    async with endpoint.running():
        response = await _post(endpoint, _headers())
    assert response.status_code == 503
    assert response.json()["detail"] == "the MCP server is not running"
