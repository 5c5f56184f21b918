"""The MCP SDK's client side: transports and the connected ``Client``.

Importing the SDK costs about a second (its protocol types are large pydantic models), so
:mod:`orchestrion.engine.mcp.pool` imports this module when it opens its first session:
a process whose workflows never call an MCP server never loads it.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any, cast

import httpcore2
import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import (
    MCP_DEFAULT_SSE_READ_TIMEOUT,
    MCP_DEFAULT_TIMEOUT,
    McpHttpClientFactory,
    create_mcp_http_client,
)
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT, Implementation

from orchestrion.engine.netguard import GuardedBackend, NetGuard
from orchestrion.kernel.http.tls import client_context
from orchestrion.kernel.mcp_config import McpServerConfig
from orchestrion.kernel.observability import tracing

__all__ = ["CONNECTION_CLOSED", "REQUEST_TIMEOUT", "Client", "MCPError", "connect"]


class _GuardedTransport(httpx2.AsyncHTTPTransport):
    """httpx2's transport (the SDK's) dialling only addresses ``guard`` checked."""

    def __init__(self, guard: NetGuard) -> None:
        super().__init__(verify=client_context(), trust_env=False)
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=client_context(),
            network_backend=cast(Any, GuardedBackend(guard, core=httpcore2)),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` (in a CLIENT span carrying its ``traceparent``, tracing on)."""
        return cast(
            httpx2.Response, await tracing.traced_send(request, super().handle_async_request)
        )


def guarded_factory(guard: NetGuard) -> McpHttpClientFactory:
    """The SDK's HTTP client factory, with connections only where ``guard`` allows."""

    def create(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        default = httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT)
        return httpx2.AsyncClient(
            transport=_GuardedTransport(guard),
            headers=headers,
            timeout=timeout or default,
            auth=auth,
        )

    return create


async def _transport(config: McpServerConfig, stack: AsyncExitStack, guard: NetGuard | None) -> Any:
    """The SDK transport for ``config`` (an HTTP client, if any, is closed with ``stack``).

    With ``guard``, connections go only to the addresses it checked (a tenant's server).
    """
    kind = config.kind
    if kind == "stdio":
        command = config.command or []
        return stdio_client(
            StdioServerParameters(
                command=command[0], args=command[1:], env=config.env, cwd=config.cwd
            )
        )
    url = config.url or ""
    factory = create_mcp_http_client if guard is None else guarded_factory(guard)
    if kind == "sse":
        return sse_client(url, headers=config.headers, httpx_client_factory=factory)
    http = await stack.enter_async_context(factory(headers=config.headers))
    return streamable_http_client(url, http_client=http)


async def connect(config: McpServerConfig, stack: AsyncExitStack, guard: NetGuard | None) -> Client:
    """A client connected to ``config``'s server (the handshake done), left with ``stack``."""
    transport = await _transport(config, stack, guard)
    client = Client(
        transport, cache=None, client_info=Implementation(name="orchestrion", version="1")
    )
    return await stack.enter_async_context(client)
