"""Queries of the flags service."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.http.lists import ListSpec, equals
from orchestrion.services.flags.models import FlagsFlag

FLAG_LIST = ListSpec(
    sortable={
        "key": FlagsFlag.key,
        "created_at": FlagsFlag.created_at,
        "updated_at": FlagsFlag.updated_at,
    },
    # ``tenant_id`` picks the tenant (platform admins); the service takes it out.
    filters={"key": equals(FlagsFlag.key), "tenant_id": equals(FlagsFlag.tenant_id)},
    fields=frozenset(
        {
            "id",
            "tenant_id",
            "key",
            "description",
            "enabled",
            "rollout",
            "variants",
            "rules",
            "version",
            "created_by",
            "created_at",
            "updated_at",
        }
    ),
    default_sort="key:asc",
    id_column=FlagsFlag.id,
)


def flags_of(tenant_id: str) -> Select[Any]:
    """Every flag of a tenant."""
    return select(FlagsFlag).where(FlagsFlag.tenant_id == tenant_id)


async def get_flag(session: AsyncSession, *, tenant_id: str, key: str) -> FlagsFlag | None:
    """The tenant's flag ``key``, or None."""
    stmt = flags_of(tenant_id).where(FlagsFlag.key == key)
    found: FlagsFlag | None = (await session.execute(stmt)).scalar_one_or_none()
    return found
