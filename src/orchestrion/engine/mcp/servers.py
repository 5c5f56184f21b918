"""Which MCP server a step's ``server`` name means, for a tenant.

Servers named in the settings (``ORCHESTRION_MCP__SERVERS``) are the operator's and may be
commands or any URL. A tenant's own servers (looked up through ``tenant_lookup``, which
the workflows service provides) are URLs only, and go through the same private-range
guard as ``http`` steps: a tenant never makes the platform spawn a program or reach its
own network.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from orchestrion.engine.mcp.pool import McpPool
from orchestrion.engine.netguard import NetGuard, Resolver, check_destination
from orchestrion.kernel.mcp_config import McpServerConfig

TenantLookup = Callable[[str, str], Awaitable[McpServerConfig | None]]


class UnknownServer(Exception):
    """No server of that name is configured for the tenant."""


async def check_url(url: str, allowlist: tuple[str, ...]) -> None:
    """Raise BlockedDestination when ``url``'s host is private and not allow-listed."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    await check_destination(parts.hostname or "", port, allowlist)


@dataclass
class McpServers:
    """The configured servers, the tenants' servers and the pool that reaches them."""

    pool: McpPool
    configured: Mapping[str, McpServerConfig] = field(default_factory=dict)
    tenant_lookup: TenantLookup | None = None
    allowlist: tuple[str, ...] = ()
    call_timeout: float = 60.0
    resolver: Resolver | None = None

    def __post_init__(self) -> None:
        self.guard = NetGuard(self.allowlist, resolver=self.resolver)
        # Sessions to tenants' servers dial only the addresses the guard checked.
        self.pool.guard_all_but(self.configured.values(), self.guard)

    async def resolve(self, tenant_id: str, name: str) -> McpServerConfig:
        """The server ``name`` means for ``tenant_id`` (UnknownServer, BlockedDestination)."""
        config = self.configured.get(name)
        if config is not None:
            return config
        if self.tenant_lookup is not None:
            config = await self.tenant_lookup(tenant_id, name)
        if config is None:
            raise UnknownServer(f"no MCP server named {name!r}")
        if config.url is None:  # defence in depth: tenant servers are stored as URLs only
            raise UnknownServer(f"MCP server {name!r} of a tenant must be a URL")
        parts = urlsplit(config.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        await self.guard.resolve(parts.hostname or "", port)
        return config

    async def aclose(self) -> None:
        """Close the pooled sessions."""
        await self.pool.aclose()
