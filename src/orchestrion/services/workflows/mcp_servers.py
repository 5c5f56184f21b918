"""A tenant's MCP servers: registering, listing and resolving them for ``mcp`` steps."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from cryptography.fernet import Fernet
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine import BlockedDestination, TenantLookup, check_url
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import Conflict, NotFound, ValidationFailed
from orchestrion.kernel.ids import isoformat
from orchestrion.kernel.mcp_config import McpServerConfig
from orchestrion.services.workflows.models import McpServer

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class McpServerCreate(BaseModel):
    """A tenant's MCP server: a URL (a tenant never makes the platform spawn a command)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN, description="The name `mcp` steps use as `server`.")
    url: str = Field(min_length=1, max_length=2000, description="http(s) URL of the server.")
    transport: Literal["streamable_http", "sse"] | None = Field(
        default=None, description="Inferred when empty: `sse` for a path ending in /sse."
    )
    headers: dict[str, str] | None = Field(
        default=None, description="Headers sent to the server (write-only, stored encrypted)."
    )


class McpServerNotFound(NotFound):
    """No MCP server of that name in the caller's tenant."""


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


async def list_servers(session: AsyncSession, tenant_id: str) -> list[McpServer]:
    """The tenant's servers by name."""
    rows = await session.execute(
        select(McpServer).where(McpServer.tenant_id == tenant_id).order_by(McpServer.name)
    )
    return list(rows.scalars())


async def get_server(session: AsyncSession, tenant_id: str, name: str) -> McpServer:
    """One of the tenant's servers (404 when absent)."""
    found = (
        await session.execute(
            select(McpServer).where(McpServer.tenant_id == tenant_id, McpServer.name == name)
        )
    ).scalar_one_or_none()
    if found is None:
        raise McpServerNotFound(f"no MCP server named '{name}'")
    return found


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
    taken = await session.scalar(
        select(func.count()).where(McpServer.tenant_id == tenant, McpServer.name == body.name)
    )
    if taken:
        raise Conflict(f"an MCP server named '{body.name}' exists; delete it first")
    count = await session.scalar(select(func.count()).where(McpServer.tenant_id == tenant))
    if (count or 0) >= limit:
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


def tenant_lookup(database: Database, fernet: Fernet) -> TenantLookup:
    """What ``mcp`` steps use to find a tenant's server by name."""

    async def lookup(tenant_id: str, name: str) -> McpServerConfig | None:
        async with database.session() as session:
            try:
                server = await get_server(session, tenant_id, name)
            except McpServerNotFound:
                return None
            return config_of(server, fernet)

    return lookup
