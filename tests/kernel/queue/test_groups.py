"""Group operations of the task queue: drop and park through indexed labels.

Key strings are never matched: a ``_`` or ``%`` in a subject is an ordinary character.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.queue import PARKED, Task, TaskQueue


@pytest.fixture
async def queue(database_url: str) -> AsyncIterator[TaskQueue]:
    database = Database(database_url)
    try:
        yield TaskQueue(database)
    finally:
        await database.dispose()


async def _enqueue(queue: TaskQueue, group: str, kind: str, subject: str) -> None:
    async with queue.database.session() as session:
        await queue.enqueue(
            session,
            queue="q",
            payload={"subject": subject},
            key=f"{group}/{kind}/{subject}",
            group=group,
            kind=kind,
            subject=subject,
        )


async def _tasks(queue: TaskQueue) -> dict[str, Task]:
    async with queue.database.session() as session:
        rows = (await session.execute(select(Task))).scalars()
        return {str(row.key): row for row in rows}


async def test_drop_matches_subjects_exactly(queue: TaskQueue) -> None:
    for subject in ("a_b", "axb", "a%", "ab"):
        await _enqueue(queue, "g1", "run", subject)
        await _enqueue(queue, "g1", "timeout", subject)
    await _enqueue(queue, "g2", "run", "a_b")
    async with queue.database.session() as session:
        await queue.drop(session, group="g1", subject="a_b")
        await queue.drop(session, group="g1", subject="a%", kind="timeout")
    left = await _tasks(queue)
    assert sorted(left) == [
        "g1/run/a%",
        "g1/run/ab",
        "g1/run/axb",
        "g1/timeout/ab",
        "g1/timeout/axb",
        "g2/run/a_b",
    ]
    async with queue.database.session() as session:
        await queue.drop(session, group="g1")
    assert sorted(await _tasks(queue)) == ["g2/run/a_b"]


async def test_park_holds_a_group_kind_until_released(queue: TaskQueue) -> None:
    await _enqueue(queue, "g1", "run", "s1")
    await _enqueue(queue, "g1", "timeout", "s1")
    await _enqueue(queue, "g2", "run", "s1")
    async with queue.database.session() as session:
        await queue.park(session, group="g1", kind="run", parked=True)
    tasks = await _tasks(queue)
    assert tasks["g1/run/s1"].run_at == PARKED
    assert tasks["g1/timeout/s1"].run_at < PARKED
    assert tasks["g2/run/s1"].run_at < PARKED
    claimed = await queue.claim(queue="q", owner="w", limit=10)
    assert sorted(str(t.key) for t in claimed) == ["g1/timeout/s1", "g2/run/s1"]
    async with queue.database.session() as session:
        await queue.park(session, group="g1", kind="run", parked=False)
    again = await queue.claim(queue="q", owner="w", limit=10)
    assert [t.key for t in again] == ["g1/run/s1"]
