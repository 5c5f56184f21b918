"""``flags.changed``: every creation, change and deletion of a flag, as a CloudEvent
staged in the transaction that made it (the kernel's outbox), so other processes drop
what they cached about that flag at once.

``data``: ``{"tenant_id", "key", "action": "created"|"updated"|"deleted", "version",
"enabled"}``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.bus.events import CloudEvent
from orchestrion.kernel.bus.outbox import stage
from orchestrion.services.flags.models import FlagsFlag

TOPIC = "flags.changed"
SOURCE = "orchestrion/flags"


def changed(session: AsyncSession, flag: FlagsFlag, *, action: str) -> None:
    """Stage the event of ``action`` on ``flag`` in the caller's transaction."""
    stage(
        session,
        topic=TOPIC,
        event_=CloudEvent(
            source=SOURCE,
            type=f"orchestrion.flag.{action}",
            subject=f"flags/{flag.key}",
            data={
                "tenant_id": flag.tenant_id,
                "key": flag.key,
                "action": action,
                "version": flag.version,
                "enabled": flag.enabled,
            },
        ),
    )
