"""The transactional outbox on every backend: committed events reach consumers once,
rolled-back ones never, and a relay that dies mid-stream loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrion.kernel.bus import Bus, CloudEvent
from orchestrion.kernel.bus.outbox import OutboxRelay, stage
from orchestrion.kernel.db.engine import Database
from tests.fixtures.databases import copy_template
from tests.kernel.bus.conftest import Collector, group_name


def _event(n: int) -> CloudEvent:
    return CloudEvent(source="tests/outbox", type="test.outbox", data={"n": n})


class _DiesAfter:
    """A bus whose connection dies after ``limit`` publishes (the relay crashes)."""

    def __init__(self, bus: Bus, limit: int) -> None:
        self.bus = bus
        self.limit = limit

    async def publish(self, topic: str, event: CloudEvent) -> None:
        if self.limit <= 0:
            raise ConnectionError("broker connection lost")
        self.limit -= 1
        await self.bus.publish(topic, event)


async def _stage_then_fail(database: Database, topic: str) -> None:
    async with database.session() as session:
        stage(session, topic=topic, event_=_event(99))
        raise RuntimeError("the change failed: its event must never leave")


@pytest.fixture
async def database(tmp_path: Path, sqlite_template: Path) -> Database:
    """A migrated SQLite database of this test's own."""
    path = copy_template(sqlite_template, tmp_path / "data")
    db = Database(f"sqlite+aiosqlite:///{path}")
    yield db  # type: ignore[misc]
    await db.dispose()


async def test_relay_delivers_committed_events_once_even_after_a_crash(
    bus: Bus, topic: str, database: Database
) -> None:
    received = Collector()
    await bus.subscribe(topic, group_name(), received)
    sent: list[CloudEvent] = []
    for n in range(10):
        async with database.session() as session:
            sent.append(_event(n))
            stage(session, topic=topic, event_=sent[-1])
    with pytest.raises(RuntimeError):
        await _stage_then_fail(database, topic)

    crashing = OutboxRelay(database, _DiesAfter(bus, 4), batch=100)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await crashing.relay_once()  # 4 published, none marked sent
    assert await OutboxRelay(database, bus).relay_once() == 10  # all again, at least once
    assert await OutboxRelay(database, bus).relay_once() == 0
    await received.wait_for_ids(*(e.id for e in sent))
    assert sorted(e.data["n"] for e in received.events) == list(range(10))  # once each
    assert 99 not in [e.data["n"] for e in received.events]
