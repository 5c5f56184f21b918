"""A tenant's MCP servers: registering, listing and resolving them for ``mcp`` steps."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine import (
    BlockedDestination,
    McpCallError,
    McpServers,
    McpTimeout,
    McpUnavailable,
    TenantLookup,
    UnknownServer,
    check_url,
)
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import (
    Conflict,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    ValidationFailed,
)
from orchestrion.kernel.ids import isoformat
from orchestrion.kernel.mcp_config import McpServerConfig
from orchestrion.services.workflows.errors import McpServerNotFound
from orchestrion.services.workflows.mcp import repository
from orchestrion.services.workflows.mcp.models import McpServer
from orchestrion.services.workflows.mcp.schemas import McpServerCreate


def to_dict(server: McpServer) -> dict[str, Any]:
    """The API shape (headers are never shown, only whether there are any)."""
    return {
        "name": server.name,
        "scope": "tenant",
        "url": server.url,
        "transport": server.transport,
        "has_headers": server.headers is not None,
        "created_by": server.created_by,
        "created_at": isoformat(server.created_at),
    }


def config_of(server: McpServer, fernet: Fernet) -> McpServerConfig:
    """The client configuration of a stored server."""
    headers = json.loads(fernet.decrypt(server.headers.encode())) if server.headers else None
    return McpServerConfig(url=server.url, transport=server.transport, headers=headers)


async def list_servers(session: AsyncSession, *, tenant_id: str) -> list[McpServer]:
    """The tenant's servers by name."""
    return await repository.servers_of(session, tenant_id=tenant_id)


async def server_list(
    session: AsyncSession, *, servers: McpServers, tenant_id: str
) -> list[dict[str, Any]]:
    """What ``mcp`` steps may call: the platform's servers (names only), then the tenant's."""
    platform = [{"name": name, "scope": "platform"} for name in sorted(servers.configured)]
    own = [to_dict(s) for s in await list_servers(session, tenant_id=tenant_id)]
    return platform + own


async def get_server(session: AsyncSession, *, tenant_id: str, name: str) -> McpServer:
    """One of the tenant's servers (404 when absent)."""
    found = await repository.find(session, tenant_id=tenant_id, name=name)
    if found is None:
        raise McpServerNotFound(f"no MCP server named '{name}'")
    return found


async def delete_server(session: AsyncSession, *, tenant_id: str, name: str) -> None:
    """Remove one of the tenant's servers: ``mcp`` steps naming it fail from now on."""
    server = await get_server(session, tenant_id=tenant_id, name=name)
    await session.delete(server)


async def create_server(
    session: AsyncSession,
    *,
    principal: Principal,
    body: McpServerCreate,
    fernet: Fernet,
    platform_names: Mapping[str, Any],
    allowlist: tuple[str, ...],
    limit: int,
) -> McpServer:
    """Check the URL (shape and destination) and store the server."""
    try:
        config = McpServerConfig(url=body.url, transport=body.transport, headers=body.headers)
    except ValueError as exc:
        raise ValidationFailed(
            f"invalid MCP server: {exc}", errors=[{"loc": ["body", "url"], "msg": str(exc)}]
        ) from None
    try:
        await check_url(body.url, allowlist)
    except BlockedDestination as exc:
        raise ValidationFailed(
            str(exc), errors=[{"loc": ["body", "url"], "msg": "destination not allowed"}]
        ) from None
    if body.name in platform_names:
        raise Conflict(f"'{body.name}' is the name of a platform MCP server")
    tenant = principal.tenant_id
    if await repository.count_named(session, tenant_id=tenant, name=body.name):
        raise Conflict(f"an MCP server named '{body.name}' exists; delete it first")
    if await repository.count_of(session, tenant_id=tenant) >= limit:
        raise Conflict(f"a tenant may register at most {limit} MCP servers")
    server = McpServer(
        tenant_id=tenant,
        name=body.name,
        url=config.url,
        transport=body.transport,
        headers=fernet.encrypt(json.dumps(body.headers).encode()).decode()
        if body.headers
        else None,
        created_by=principal.user_id,
    )
    session.add(server)
    await session.flush()
    return server


async def tools(*, servers: McpServers, tenant_id: str, name: str) -> list[dict[str, Any]]:
    """Ask a server (the platform's or the tenant's) for its tools.

    404 for an unknown name, 502 for a destination the guard refuses, 504 when the
    server does not answer in time, 503 when it cannot be reached or fails.
    """
    try:
        config = await servers.resolve(tenant_id, name)
    except UnknownServer as exc:
        raise McpServerNotFound(str(exc)) from None
    except BlockedDestination as exc:
        raise UpstreamError(str(exc)) from None
    try:
        found = await servers.pool.list_tools(config, seconds=servers.call_timeout)
    except McpTimeout as exc:
        raise UpstreamTimeout(str(exc)) from None
    except (McpUnavailable, McpCallError) as exc:
        raise ServiceUnavailable(f"MCP server '{name}': {exc}") from None
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in found]


def tenant_lookup(*, database: Database, fernet: Fernet) -> TenantLookup:
    """What ``mcp`` steps use to find a tenant's server by name."""

    async def lookup(tenant_id: str, name: str) -> McpServerConfig | None:
        async with database.session() as session:
            try:
                server = await get_server(session, tenant_id=tenant_id, name=name)
            except McpServerNotFound:
                return None
            return config_of(server, fernet)

    return lookup
