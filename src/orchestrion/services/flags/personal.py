"""A person's records in the flags service: exported, or anonymised on erasure.

Only ``created_by`` of a flag names a person: **anonymised** to ``erased:<digest>`` on
erasure, since the flag is the tenant's and keeps steering its traffic. Evaluations are
computed from the caller's id each time and never stored.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.ids import isoformat
from orchestrion.kernel.personal import Person
from orchestrion.services.flags.models import FlagsFlag

SERVICE = "flags"


async def export(session: AsyncSession, person: Person) -> dict[str, Any]:
    """Every flag ``person`` created."""
    flags = (
        await session.execute(
            select(FlagsFlag)
            .where(FlagsFlag.created_by.in_(person.ids))
            .order_by(FlagsFlag.created_at)
        )
    ).scalars()
    return {
        "flags": [
            {
                "id": f.id,
                "key": f.key,
                "tenant_id": f.tenant_id,
                "created_by": f.created_by,
                "created_at": isoformat(f.created_at),
            }
            for f in flags
        ]
    }


async def erase(session: AsyncSession, person: Person) -> None:
    """Anonymise ``person`` here (idempotent)."""
    await session.execute(
        update(FlagsFlag)
        .where(FlagsFlag.created_by == person.user_id)
        .values(created_by=person.pseudonym)
        .execution_options(synchronize_session=False)
    )
