"""A task that crashes its worker every time is handed out at most ``max_attempts``
times, then dead-lettered: listed by ``dead_letters``, never claimed again."""

from __future__ import annotations

from datetime import timedelta

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.queue import DeadLetter, TaskQueue


async def test_a_task_that_always_crashes_is_dead_lettered(database: Database) -> None:
    buried: list[DeadLetter] = []

    async def on_dead(dead: list[DeadLetter]) -> None:
        buried.extend(dead)

    # A lease that has always run out: each claim is a redelivery, as after a crash.
    queue = TaskQueue(database, lease=timedelta(seconds=-1), max_attempts=3, on_dead=on_dead)
    async with database.session() as session:
        await queue.enqueue(session, queue="q", payload={"n": 1}, key="crashy", group="g")
        await queue.enqueue(session, queue="q", payload={"n": 2}, key="healthy", group="g")
    for attempt in (1, 2, 3):
        claimed = await queue.claim(queue="q", owner=f"worker-{attempt}", limit=1)
        assert [(task.key, task.attempts) for task in claimed] == [("crashy", attempt)]
    # The fourth delivery does not happen: the task is dead-lettered, the next one runs.
    claimed = await queue.claim(queue="q", owner="worker-4", limit=1)
    assert [task.key for task in claimed] == ["healthy"]
    assert [(d.key, d.queue, d.attempts, d.payload) for d in buried] == [
        ("crashy", "q", 3, {"n": 1})
    ]
    async with database.session() as session:
        assert await queue.complete(session, task_id=claimed[0].id, owner="worker-4")
    assert await queue.claim(queue="q", owner="worker-5", limit=10) == []
    dead = await queue.dead_letters(queue="q")
    assert [(d.key, d.attempts) for d in dead] == [("crashy", 3)]
    assert await queue.count(queue="q") == 0
    # Cancelling the group's work keeps the dead letter for inspection; its key stays
    # taken, so the same work enqueued again is still ignored.
    async with database.session() as session:
        await queue.drop(session, group="g")
        await queue.enqueue(session, queue="q", payload={}, key="crashy")
    assert await queue.count(queue="q") == 0
    assert [d.key for d in await queue.dead_letters(queue="q")] == ["crashy"]
    assert await queue.discard_dead(queue="q", task_ids=[dead[0].id]) == 1
    assert await queue.dead_letters(queue="q") == []


async def test_the_default_cap_is_25_deliveries(database: Database) -> None:
    queue = TaskQueue(database, lease=timedelta(seconds=-1))
    async with database.session() as session:
        await queue.enqueue(session, queue="q", payload={}, key="k")
    deliveries = 0
    while await queue.claim(queue="q", owner="w"):
        deliveries += 1
        assert deliveries <= 25, "delivered past the cap"
    assert deliveries == 25
    assert [d.attempts for d in await queue.dead_letters(queue="q")] == [25]
