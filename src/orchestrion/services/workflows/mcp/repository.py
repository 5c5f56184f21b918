"""Queries of the MCP servers tenants register."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.services.workflows.mcp.models import McpServer


async def servers_of(session: AsyncSession, *, tenant_id: str) -> list[McpServer]:
    """The tenant's servers by name."""
    rows = await session.execute(
        select(McpServer).where(McpServer.tenant_id == tenant_id).order_by(McpServer.name)
    )
    return list(rows.scalars())


async def find(session: AsyncSession, *, tenant_id: str, name: str) -> McpServer | None:
    """The tenant's server of that name, or None."""
    return (
        await session.execute(
            select(McpServer).where(McpServer.tenant_id == tenant_id, McpServer.name == name)
        )
    ).scalar_one_or_none()


async def count_named(session: AsyncSession, *, tenant_id: str, name: str) -> int:
    """How many of the tenant's servers have that name (0 or 1)."""
    found = await session.scalar(
        select(func.count()).where(McpServer.tenant_id == tenant_id, McpServer.name == name)
    )
    return found or 0


async def count_of(session: AsyncSession, *, tenant_id: str) -> int:
    """How many servers the tenant has."""
    found = await session.scalar(select(func.count()).where(McpServer.tenant_id == tenant_id))
    return found or 0
