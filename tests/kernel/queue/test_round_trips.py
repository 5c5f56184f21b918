"""The queue's round trips on PostgreSQL: a claim in one statement, a completion sent
with the transaction's next statement on the task table (or at commit); the same rows
and results as SQLite's separate statements.

(Here rather than in ``tests/kernel/queue/``, with the queue's other tests, only because
of who edited what when it was written.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select, text, update

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.ids import utcnow
from orchestrion.kernel.queue import DeadLetter, Task, TaskQueue


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements the database runs inside the block (not BEGIN and COMMIT)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


#: A transaction's first statement: a worker's locks its execution before it completes
#: tasks (and the queue holds a DELETE only in a transaction already begun).
_BEGUN = text("SELECT 1")


async def _rows(database: Database) -> dict[str, dict[str, Any]]:
    async with database.session() as session:
        found = (await session.execute(select(Task))).scalars()
        return {
            task.key or "": {
                "queue": task.queue,
                "owner": task.lease_owner,
                "leased": task.lease_expires_at is not None,
                "attempts": task.attempts,
                "group": task.group_key,
            }
            for task in found
        }


async def _tasks(database: Database) -> list[Task]:
    async with database.session() as session:
        return list((await session.execute(select(Task))).scalars())


async def _payloads(database: Database) -> dict[str, Any]:
    return {task.key or "": task.payload for task in await _tasks(database)}


async def test_a_claim_leases_and_dead_letters_as_before(database: Database) -> None:
    """The same rows after it on both databases: the due tasks of the highest priority,
    then the oldest, leased; a spent one dead-lettered. Returned in the order of their
    ids (of their creation)."""
    buried: list[DeadLetter] = []

    async def on_dead(dead: list[DeadLetter]) -> None:
        buried.extend(dead)

    queue = TaskQueue(database, max_attempts=3, on_dead=on_dead)
    now = utcnow()
    async with database.session() as session:
        for key, priority, ago in (("low", 0, 9), ("high", 5, 1), ("old", 0, 20), ("mid", 2, 3)):
            await queue.enqueue(
                session,
                queue="q",
                payload={"k": key},
                key=key,
                group="g",
                priority=priority,
                run_at=now - timedelta(seconds=ago),
            )
        await queue.enqueue(session, queue="q", payload={}, key="spent", group="g", priority=9)
        await queue.enqueue(
            session, queue="q", payload={}, key="later", run_at=now + timedelta(hours=1)
        )
        await queue.enqueue(session, queue="other", payload={}, key="elsewhere")
        await queue.enqueue(session, queue="q", payload={}, key="held", leased_to="someone")
        await session.execute(update(Task).where(Task.key == "spent").values(attempts=3))

    with statements(database) as seen:
        claimed = await queue.claim(queue="q", owner="w", limit=4)
    # The spent task took a place: the claim looked again for the fourth. One statement
    # each on PostgreSQL; on SQLite BEGIN IMMEDIATE and four statements.
    postgres = database.url.startswith("postgresql")
    assert len(seen) == (2 if postgres else 10)
    assert [task.key for task in claimed] == ["high", "old", "mid", "low"]
    assert [(task.attempts, task.payload) for task in claimed][:2] == [
        (1, {"k": "high"}),
        (1, {"k": "old"}),
    ]
    assert all(task.lease_expires_at > now for task in claimed)
    assert [(letter.key, letter.queue, letter.attempts) for letter in buried] == [("spent", "q", 3)]
    rows = await _rows(database)
    leased = {"queue": "q", "owner": "w", "leased": True, "attempts": 1, "group": "g"}
    assert rows == {
        "high": leased,
        "mid": leased,
        "old": leased,
        "low": leased,
        "spent": {"queue": "q.dead", "owner": None, "leased": False, "attempts": 3, "group": None},
        "later": {"queue": "q", "owner": None, "leased": False, "attempts": 0, "group": None},
        "elsewhere": {
            "queue": "other",
            "owner": None,
            "leased": False,
            "attempts": 0,
            "group": None,
        },
        "held": {"queue": "q", "owner": "someone", "leased": True, "attempts": 1, "group": None},
    }
    assert await queue.claim(queue="q", owner="w", limit=4) == []


async def test_a_completion_goes_with_the_next_task(database: Database) -> None:
    """A worker's transaction: its task completed, the next one enqueued leased to it.
    One statement on PostgreSQL, where it took two; the completed task's key is free
    to the insert, as when the ``DELETE`` ran first."""
    queue = TaskQueue(database)
    async with database.session() as session:
        await queue.enqueue(session, queue="q", payload={}, key="first", leased_to="w")
        await queue.enqueue(session, queue="q", payload={}, key="again", leased_to="w")
        await queue.enqueue(session, queue="q", payload={}, key="theirs", leased_to="them")
    tasks = {task.key: task.id for task in await _tasks(database)}
    with statements(database) as seen:
        async with database.session() as session:
            await session.execute(_BEGUN)
            await queue.complete_many(session, task_ids=[tasks["first"]], owner="w")
            # "theirs": the lease was lost, so it is left to its owner.
            await queue.complete_many(
                session, task_ids=[tasks["again"], tasks["theirs"]], owner="w"
            )
            # The key of a task completed in this transaction is free again.
            again = await queue.enqueue(
                session, queue="q", payload={"n": 2}, key="again", leased_to="w"
            )
            second = await queue.enqueue(
                session, queue="q", payload={"n": 3}, key="second", leased_to="w"
            )
            # An existing key is still refused.
            refused = await queue.enqueue(
                session, queue="q", payload={}, key="theirs", leased_to="w"
            )
    assert again is not None
    assert second is not None
    assert refused is None
    postgres = database.url.startswith("postgresql")
    # PostgreSQL: the DELETE went with the first INSERT.
    deletes = [statement for statement in seen if "DELETE" in statement]
    assert len(deletes) == (1 if postgres else 2)
    assert len(seen) == (4 if postgres else 7)
    rows = await _rows(database)
    assert set(rows) == {"theirs", "again", "second"}
    assert rows["again"] == {
        "queue": "q",
        "owner": "w",
        "leased": True,
        "attempts": 1,
        "group": None,
    }
    assert (await _payloads(database))["again"] == {"n": 2}


async def test_a_held_completion_goes_before_the_queues_next_statement_or_at_commit(
    database: Database,
) -> None:
    queue = TaskQueue(database)
    async with database.session() as session:
        for key in ("a", "b", "c", "d", "e"):
            await queue.enqueue(session, queue="q", payload={}, key=key, leased_to="w")
    ids = {task.key: task.id for task in await _tasks(database)}
    postgres = database.url.startswith("postgresql")
    async with database.session() as session:
        await session.execute(_BEGUN)
        await queue.complete_many(session, task_ids=[ids["a"]], owner="w")
        with statements(database) as seen:
            await queue.release(session, task_id=ids["b"], owner="w", run_at=utcnow())
        # Held until then on PostgreSQL, and sent first: the table reads as it did.
        assert [statement.split()[0] for statement in seen] == (
            ["DELETE", "UPDATE"] if postgres else ["UPDATE"]
        )
        assert set((await session.execute(select(Task.key))).scalars()) == {"b", "c", "d", "e"}
        await queue.complete_many(session, task_ids=[ids["c"]], owner="w")
        # Another owner's (whose lease on "d" is lost): the one held goes first.
        await queue.complete_many(session, task_ids=[ids["d"]], owner="other")
        assert set((await session.execute(select(Task.key))).scalars()) == {"b", "d", "e"}
    async with database.session() as session:
        await session.execute(_BEGUN)
        await queue.complete_many(session, task_ids=[ids["e"]], owner="w")
        # Nothing else in the transaction: sent at commit.
    assert {task.key for task in await _tasks(database)} == {"b", "d"}


async def test_a_rollback_drops_a_held_completion(database: Database) -> None:
    queue = TaskQueue(database)
    async with database.session() as session:
        await queue.enqueue(session, queue="q", payload={}, key="a", leased_to="w")
    [task] = await _tasks(database)
    # One session, two transactions: the first one's DELETE goes with its rollback.
    async with database.sessionmaker() as session:
        await session.execute(_BEGUN)
        await queue.complete_many(session, task_ids=[task.id], owner="w")
        await session.rollback()
        await queue.enqueue(session, queue="q", payload={}, key="b")
        await session.commit()
    assert {found.key for found in await _tasks(database)} == {"a", "b"}
