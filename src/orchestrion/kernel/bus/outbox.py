"""The transactional outbox: events committed with the state that caused them.

A service stages an event in the same transaction as its change
(:func:`stage`); nothing reaches a broker unless that transaction commits. The
:class:`OutboxRelay` then publishes staged events in order and marks them sent. A
relay that dies between publishing and marking publishes those events again on
restart: delivery is at least once, and consumers drop repeats by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import Index, String, Text, delete, event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.bus.base import Bus
from orchestrion.kernel.bus.events import CloudEvent
from orchestrion.kernel.db.base import Base
from orchestrion.kernel.db.engine import Database, is_sqlite
from orchestrion.kernel.ids import utcnow

logger = logging.getLogger("orchestrion.bus.outbox")
KEEP_SENT = timedelta(hours=1)


class OutboxMessage(Base):
    """A staged event: ``sent_at`` is set once a broker confirmed it."""

    __tablename__ = "kernel_outbox"
    __table_args__ = (Index("ix_kernel_outbox_pending", "sent_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()


def stage(session: AsyncSession, *, topic: str, event_: CloudEvent) -> None:
    """Add ``event_`` to the outbox in the caller's transaction."""
    session.add(
        OutboxMessage(
            id=event_.id, topic=topic, body=event_.to_json().decode(), created_at=utcnow()
        )
    )
    if not session.info.get("orchestrion.outbox"):
        session.info["orchestrion.outbox"] = True
        event.listen(session.sync_session, "after_commit", _wake_relays, once=True)


def _wake_relays(sync_session: Any) -> None:
    sync_session.info.pop("orchestrion.outbox", None)
    for relay in OutboxRelay.running:
        relay.wake()


class OutboxRelay:
    """Publishes staged events of one database to one bus, oldest first."""

    running: ClassVar[set[OutboxRelay]] = set()

    def __init__(
        self, database: Database, bus: Bus, *, batch: int = 200, poll_seconds: float = 1.0
    ) -> None:
        self.database = database
        self.bus = bus
        self.batch = batch
        self.poll_seconds = poll_seconds
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._last_purge = utcnow()

    def wake(self) -> None:
        """Look for staged events now."""
        self._wakeup.set()

    def start(self) -> None:
        """Relay in the background until :meth:`stop`."""
        OutboxRelay.running.add(self)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop after the batch in flight."""
        OutboxRelay.running.discard(self)
        self._stopping = True
        self.wake()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping:
            try:
                sent = await self.relay_once()
            except Exception:
                logger.exception("outbox relay failed; retrying")
                sent = 0
            if sent >= self.batch:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.poll_seconds)
            self._wakeup.clear()

    async def relay_once(self) -> int:
        """Publish one batch of staged events; how many were sent."""
        async with self.database.session() as session:
            stmt = (
                select(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None))
                .order_by(OutboxMessage.created_at, OutboxMessage.id)
                .limit(self.batch)
            )
            if not is_sqlite(self.database.url):
                # One relay at a time publishes, so events leave in commit order.
                granted = await session.execute(
                    select(func.pg_try_advisory_xact_lock(func.hashtext("orchestrion:outbox")))
                )
                if not granted.scalar_one():
                    return 0
            rows = list((await session.execute(stmt)).scalars())
            for row in rows:
                await self.bus.publish(row.topic, CloudEvent.from_json(row.body))
                row.sent_at = utcnow()
            if utcnow() - self._last_purge > KEEP_SENT:
                self._last_purge = utcnow()
                await session.execute(
                    delete(OutboxMessage).where(OutboxMessage.sent_at < utcnow() - KEEP_SENT)
                )
            return len(rows)
