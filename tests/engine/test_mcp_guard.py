"""A tenant's MCP server: its session connects only to addresses the guard checked.

The reference MCP server listens on 127.0.0.1. A name that the guard's resolver answers
with a public address at the check and with loopback afterwards (DNS rebinding) never
reaches it; an allow-listed name reaches it at the address that was checked; the
operator's (configured) servers are not guarded.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest

from orchestrion.engine.mcp.pool import McpPool, McpUnavailable
from orchestrion.engine.mcp.servers import McpServers
from orchestrion.kernel.mcp_config import McpServerConfig


class Answers:
    """Answers ``first`` on the first lookup and ``then`` on later ones."""

    def __init__(self, first: str, then: str) -> None:
        self.answers = [first, then]
        self.calls = 0

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls += 1
        return [self.answers[min(self.calls, 2) - 1]]


def _servers(url: str, resolver: Answers, allowlist: tuple[str, ...] = ()) -> McpServers:
    async def lookup(tenant_id: str, name: str) -> McpServerConfig | None:
        return McpServerConfig(url=url) if name == "mine" else None

    return McpServers(
        pool=McpPool(connect_timeout=10),
        configured={"platform": McpServerConfig(url=url.replace("mcp.example", "127.0.0.1"))},
        tenant_lookup=lookup,
        allowlist=allowlist,
        resolver=resolver,
        call_timeout=10,
    )


async def test_a_rebinding_tenant_server_is_never_reached(everything_http: str) -> None:
    port = httpx.URL(everything_http).port
    resolver = Answers("93.184.215.14", "127.0.0.1")
    servers = _servers(f"http://mcp.example:{port}/mcp", resolver)
    try:
        config = await servers.resolve("t1", "mine")  # checked: public
        with pytest.raises(McpUnavailable, match="not a public address"):
            await servers.pool.list_tools(config, seconds=10)
        # The operator's server on loopback is trusted: no guard, no allow-listing.
        platform = await servers.resolve("t1", "platform")
        tools = await servers.pool.list_tools(platform, seconds=10)
    finally:
        await servers.aclose()
    assert resolver.calls == 2
    assert "echo" in {t.name for t in tools}


async def test_an_allow_listed_tenant_server_is_reached_at_the_checked_address(
    everything_http: str,
) -> None:
    port = httpx.URL(everything_http).port
    resolver = Answers("127.0.0.1", "127.0.0.1")
    servers = _servers(f"http://mcp.example:{port}/mcp", resolver, ("127.0.0.1/32",))
    try:
        config = await servers.resolve("t1", "mine")
        tools = await servers.pool.list_tools(config, seconds=10)
    finally:
        await servers.aclose()
    assert {"echo", "get-sum"} <= {t.name for t in tools}
