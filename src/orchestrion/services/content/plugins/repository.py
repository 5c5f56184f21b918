"""Queries of the plugin routes."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.http.lists import ListSpec, equals
from orchestrion.services.content.plugins.models import ContentPlugin

PLUGIN_LIST = ListSpec(
    sortable={
        "created_at": ContentPlugin.created_at,
        "name": ContentPlugin.name,
        "version": ContentPlugin.version,
    },
    filters={"name": equals(ContentPlugin.name), "version": equals(ContentPlugin.version)},
    fields=frozenset(
        {
            "id",
            "name",
            "version",
            "description",
            "functions",
            "sha256",
            "size_bytes",
            "limits",
            "created_at",
        }
    ),
    id_column=ContentPlugin.id,
)


def plugins_of(tenant_id: str) -> Select[ContentPlugin]:
    """Every plugin of a tenant (without module bytes)."""
    return select(ContentPlugin).where(ContentPlugin.tenant_id == tenant_id)


async def get(session: AsyncSession, *, tenant_id: str, plugin_id: str) -> ContentPlugin | None:
    """A plugin of the tenant by id, or None (another tenant's is None too)."""
    result = await session.execute(plugins_of(tenant_id).where(ContentPlugin.id == plugin_id))
    return result.scalar_one_or_none()


async def latest_named(session: AsyncSession, *, tenant_id: str, name: str) -> ContentPlugin | None:
    """The tenant's most recently uploaded plugin called ``name``, or None."""
    query = (
        plugins_of(tenant_id)
        .where(ContentPlugin.name == name)
        .order_by(ContentPlugin.created_at.desc(), ContentPlugin.id.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def exists(session: AsyncSession, *, tenant_id: str, name: str, version: str) -> bool:
    """Whether the tenant has this name and version already."""
    query = (
        select(ContentPlugin.id)
        .where(ContentPlugin.tenant_id == tenant_id)
        .where(ContentPlugin.name == name, ContentPlugin.version == version)
    )
    return (await session.execute(query)).first() is not None


async def module_bytes(session: AsyncSession, *, plugin_id: str) -> bytes:
    """The module of a plugin (loaded only when the compiled one is not cached)."""
    query = select(ContentPlugin.module).where(ContentPlugin.id == plugin_id)
    return bytes((await session.execute(query)).scalar_one())
