"""Appends the audit lines other services stage on the bus (``audit.events``) to the
trail, and prunes lines past the retention period.

A line's id is its event's id: an event delivered twice finds its line and appends
nothing, whatever the bus's own deduplication remembers. A line naming someone erased
since it was recorded (it waited in another service's outbox) is appended anonymised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete

from orchestrion.kernel.audit import EVENT_TYPE, TOPIC
from orchestrion.kernel.bus import Bus, CloudEvent, Handler, Subscription
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.ids import utcnow
from orchestrion.services.auth import personal
from orchestrion.services.auth.audit import chain
from orchestrion.services.auth.models import AuditEvent

GROUP = "auth-audit"
logger = logging.getLogger("orchestrion.auth.audit")


class LineData(BaseModel):
    """The data of an ``orchestrion.audit.recorded`` event (unknown fields ignored)."""

    model_config = ConfigDict(extra="ignore")

    tenant_id: str | None = Field(default=None, max_length=36)
    actor_id: str | None = Field(default=None, max_length=36)
    actor_type: str | None = Field(default=None, max_length=16)
    action: str = Field(min_length=1, max_length=64)
    resource_type: str | None = Field(default=None, max_length=32)
    resource_id: str | None = Field(default=None, max_length=64)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=300)
    request_id: str | None = Field(default=None, max_length=128)
    service: str | None = Field(default=None, max_length=32)
    data: dict[str, Any] = Field(default_factory=dict)
    time: datetime | None = None


def handler(database: Database) -> Handler:
    """The bus handler appending each recorded line once."""

    async def handle(event: CloudEvent) -> None:
        if event.type != EVENT_TYPE:
            return
        try:
            line = LineData.model_validate(event.data)
        except ValidationError as exc:
            # Retrying cannot fix it: say so and drop it rather than dead-letter noise.
            logger.warning("audit event %s dropped: %s", event.id, exc)
            return
        async with database.session() as session:
            if await session.get(AuditEvent, event.id) is not None:
                return
            appended = AuditEvent(
                id=event.id,
                tenant_id=line.tenant_id,
                actor_id=line.actor_id,
                actor_type=line.actor_type,
                action=line.action,
                target_type=line.resource_type,
                target_id=line.resource_id,
                ip=line.ip,
                user_agent=line.user_agent,
                request_id=line.request_id,
                service=line.service,
                data=line.data,
                created_at=line.time or event.time,
            )
            # Recorded before its actor was erased, relayed after: it arrives anonymised.
            await personal.anonymise_late_line(session, appended)
            chain.add_line(session, appended)

    return handle


async def subscribe(bus: Bus, database: Database) -> Subscription:
    """Join the group that keeps the trail."""
    return await bus.subscribe(TOPIC, GROUP, handler(database))


async def prune_once(database: Database, *, retention_days: int) -> int:
    """Prune every chain to ``retention_days``; how many lines went."""
    before = utcnow() - timedelta(days=retention_days)
    total = 0
    async with database.session() as session:
        names = await chain.chains(session, tenant_id=None)
    for name in names:
        # One transaction per tenant: a tenant's appends wait for its prune only.
        async with database.session() as session:
            total += await chain.prune(session, chain=name, before=before)
    async with database.session() as session:
        # Lines from before the chain existed have no place to anchor: age is enough.
        result = await session.execute(
            delete(AuditEvent).where(AuditEvent.seq.is_(None), AuditEvent.created_at < before)
        )
        total += int(getattr(result, "rowcount", 0) or 0)
    return total


class Pruner:
    """Prunes old audit lines every ``interval`` seconds (retention 0: never)."""

    def __init__(self, database: Database, *, retention_days: int, interval: float) -> None:
        self.database = database
        self.retention_days = retention_days
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Prune in the background until :meth:`stop`."""
        if self.retention_days > 0:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop pruning."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                pruned = await prune_once(self.database, retention_days=self.retention_days)
                if pruned:
                    logger.info(
                        "pruned %d audit lines older than %d days", pruned, self.retention_days
                    )
            except Exception:
                logger.exception("audit pruning failed; retrying at the next interval")
            await asyncio.sleep(self.interval)
