"""SQLite's single writer: a second writer waits its busy timeout, then gets ``Busy``
(answered 503 with ``Retry-After``), never SQLAlchemy's "database is locked"."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.db.sqlite import OneTripConnection
from orchestrion.kernel.errors import Busy


async def test_a_writer_past_the_busy_timeout_gets_busy(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    # Two Database objects on one file: two services of one process, or two processes.
    holder, waiter = Database(url), Database(url, busy_timeout_ms=100)
    try:
        async with holder.session() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
        async with holder.session() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))  # holds the writer lock
            with pytest.raises(Busy) as caught:
                async with waiter.session() as other:
                    await other.execute(text("INSERT INTO t VALUES (2)"))
            assert "database is locked" in str(caught.value.__cause__)
        async with waiter.session() as session:  # the lock is free again: it writes
            await session.execute(text("INSERT INTO t VALUES (3)"))
            values = (await session.execute(text("SELECT x FROM t ORDER BY x"))).scalars()
            assert list(values) == [1, 3]
    finally:
        await holder.dispose()
        await waiter.dispose()


async def test_a_sqlite_statement_is_one_trip_to_the_driver_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows, row counts, executemany, errors and streaming behave as with aiosqlite's
    own cursors, with one call on the driver's thread per statement."""
    from sqlalchemy.exc import IntegrityError

    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'trips.db'}")
    trips = 0
    original = OneTripConnection._execute

    async def counted(self: OneTripConnection, fn: Any, *args: Any, **kw: Any) -> Any:
        nonlocal trips
        trips += 1
        return await original(self, fn, *args, **kw)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(OneTripConnection, "_execute", counted)
    try:
        async with database.session() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)"))
            await session.execute(
                text("INSERT INTO t VALUES (:x, :y)"), [{"x": i, "y": f"v{i}"} for i in range(5)]
            )
            before = trips
            changed = await session.execute(text("UPDATE t SET y = 'w' WHERE x >= 3"))
            assert changed.rowcount == 2  # type: ignore[attr-defined]
            rows = (await session.execute(text("SELECT x, y FROM t ORDER BY x"))).all()
            assert [tuple(r) for r in rows] == [(0, "v0"), (1, "v1"), (2, "v2"), (3, "w"), (4, "w")]
            assert trips - before == 2
        with pytest.raises(IntegrityError):
            async with database.session() as session:
                await session.execute(text("INSERT INTO t VALUES (1, 'again')"))
        async with database.engine.connect() as connection:
            streamed = await connection.stream(text("SELECT x FROM t ORDER BY x"))
            assert [row[0] async for row in streamed] == [0, 1, 2, 3, 4]
    finally:
        await database.dispose()


class _Traced:
    """Every statement SQLite runs on the database's connections, with the thread that
    ran it (SQLite's trace callback is called on that thread)."""

    def __init__(self, database: Database) -> None:
        self.statements: list[tuple[str, int]] = []
        sync_engine = database.engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _trace(dbapi_connection: Any, _record: Any) -> None:
            raw = dbapi_connection.driver_connection._conn
            raw.set_trace_callback(lambda sql: self.statements.append((sql, threading.get_ident())))
            raw.create_function("thread_id", 0, threading.get_ident)

    def clear(self) -> None:
        self.statements.clear()

    def on(self, thread: int) -> list[str]:
        return [sql for sql, ident in self.statements if ident == thread]

    def off(self, thread: int) -> list[str]:
        return [sql for sql, ident in self.statements if ident != thread]


async def test_an_on_loop_transaction_runs_its_statements_on_the_loop_thread(
    tmp_path: Path,
) -> None:
    """Between BEGIN IMMEDIATE and COMMIT (both on the driver's thread), an opted-in
    session's statements (the ORM's flush included) run on the event loop's thread; a
    session that did not opt in runs every statement on the driver's thread."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'loop.db'}")
    traced = _Traced(database)
    loop_thread = threading.get_ident()
    try:
        async with database.session() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY, at INTEGER)"))
        traced.clear()
        async with database.session(on_loop=True) as session:
            ran_on = (await session.execute(text("SELECT thread_id()"))).scalar_one()
            await session.execute(text("INSERT INTO t VALUES (1, thread_id())"))
            await session.execute(
                text("INSERT INTO t VALUES (:x, thread_id())"), [{"x": 2}, {"x": 3}]
            )
        assert ran_on == loop_thread
        assert traced.off(loop_thread) == ["BEGIN IMMEDIATE", "COMMIT"]
        assert len(traced.on(loop_thread)) == 4  # executemany: one per row

        traced.clear()
        async with database.session() as session:
            ran_on = (await session.execute(text("SELECT thread_id()"))).scalar_one()
            await session.execute(text("INSERT INTO t VALUES (4, thread_id())"))
        assert ran_on != loop_thread
        assert traced.on(loop_thread) == []
        assert traced.off(loop_thread)[0] == "BEGIN IMMEDIATE"
        assert traced.off(loop_thread)[-1] == "COMMIT"

        async with database.session() as session:
            rows = (await session.execute(text("SELECT x, at FROM t ORDER BY x"))).all()
        threads = dict(rows)
        assert threads[1] == threads[2] == threads[3] == loop_thread
        assert threads[4] != loop_thread
    finally:
        await database.dispose()


async def test_the_orm_flush_of_an_on_loop_session_runs_on_the_loop_thread(
    tmp_path: Path,
) -> None:
    """The engine's writes are mostly the unit of work's: its INSERTs and UPDATEs at
    commit run on the loop thread too; the COMMIT itself does not."""
    from orchestrion.engine.models import Execution  # noqa: F401 (the tables' metadata)
    from orchestrion.kernel.db.base import Base

    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'flush.db'}")
    traced = _Traced(database)
    loop_thread = threading.get_ident()

    class Thing(Base):
        __tablename__ = "test_on_loop_things"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]

    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(Thing.__table__.create)  # type: ignore[attr-defined]
        traced.clear()
        async with database.session(on_loop=True) as session:
            session.add_all([Thing(id=1, name="a"), Thing(id=2, name="b")])
            await session.flush()
            (await session.get_one(Thing, 1)).name = "c"
        assert traced.off(loop_thread) == ["BEGIN IMMEDIATE", "COMMIT"]
        assert any(sql.startswith("INSERT") for sql in traced.on(loop_thread))
        assert any(sql.startswith("UPDATE") for sql in traced.on(loop_thread))
        async with database.session() as session:
            names = (await session.execute(text("SELECT name FROM test_on_loop_things"))).scalars()
            assert sorted(names) == ["b", "c"]
    finally:
        Base.metadata.remove(Thing.__table__)  # type: ignore[arg-type]
        await database.dispose()


async def test_a_failing_statement_on_the_loop_rolls_back_and_the_connection_goes_on(
    tmp_path: Path,
) -> None:
    """An error in a statement run on the loop thread is raised as before; the
    transaction rolls back (ROLLBACK on the driver's thread) and the connection serves
    the next transaction, on the loop again."""
    from sqlalchemy.exc import IntegrityError

    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'fail.db'}")
    traced = _Traced(database)
    loop_thread = threading.get_ident()
    try:
        async with database.session() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))

        async def duplicate() -> None:
            async with database.session(on_loop=True) as session:
                await session.execute(text("INSERT INTO t VALUES (2)"))
                await session.execute(text("INSERT INTO t VALUES (1)"))  # a duplicate

        traced.clear()
        with pytest.raises(IntegrityError):
            await duplicate()
        assert traced.off(loop_thread) == ["BEGIN IMMEDIATE", "ROLLBACK"]
        traced.clear()
        async with database.session(on_loop=True) as session:
            await session.execute(text("INSERT INTO t VALUES (3)"))
            values = (await session.execute(text("SELECT x FROM t ORDER BY x"))).scalars()
            assert list(values) == [1, 3]  # 2 was rolled back
        assert traced.off(loop_thread) == ["BEGIN IMMEDIATE", "COMMIT"]
        assert len(traced.on(loop_thread)) == 2
    finally:
        await database.dispose()


async def test_an_invalidated_connection_is_replaced_and_its_work_lost(tmp_path: Path) -> None:
    """A connection invalidated inside an on-loop transaction (as SQLAlchemy does when
    the driver fails) is closed with its uncommitted work; the next transaction gets a
    new connection and runs on the loop again."""
    from sqlalchemy.exc import PendingRollbackError

    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'invalid.db'}")
    traced = _Traced(database)
    loop_thread = threading.get_ident()
    try:
        async with database.session() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))

        async def invalidated() -> None:
            async with database.session(on_loop=True) as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))
                connection = await session.connection()
                await connection.invalidate()
                await session.execute(text("INSERT INTO t VALUES (2)"))

        with pytest.raises(PendingRollbackError):
            await invalidated()
        traced.clear()
        async with database.session(on_loop=True) as session:
            await session.execute(text("INSERT INTO t VALUES (3)"))
            values = (await session.execute(text("SELECT x FROM t ORDER BY x"))).scalars()
            assert list(values) == [3]
        assert traced.off(loop_thread) == ["BEGIN IMMEDIATE", "COMMIT"]
    finally:
        await database.dispose()


async def test_a_statement_waits_for_a_call_still_on_the_driver_thread(tmp_path: Path) -> None:
    """Never two threads on the connection at once: while a call handed to the driver's
    thread is queued or running (one left by a cancelled await, say), a statement goes
    to that thread too, after it."""
    import time

    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}")
    traced = _Traced(database)
    loop_thread = threading.get_ident()
    try:
        async with database.session() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
        async with database.session(on_loop=True) as session:
            connection = await session.connection()
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert isinstance(driver, OneTripConnection)
            assert driver.on_loop
            slow = asyncio.ensure_future(driver._execute(time.sleep, 0.2))
            await asyncio.sleep(0)  # handed over, not awaited
            traced.clear()
            await session.execute(text("INSERT INTO t VALUES (1)"))
            assert slow.done()  # it ran after the sleep, on the driver's thread
            assert traced.off(loop_thread) == ["INSERT INTO t VALUES (1)"]
            traced.clear()
            await session.execute(text("INSERT INTO t VALUES (2)"))  # nothing left there
            assert traced.on(loop_thread) == ["INSERT INTO t VALUES (2)"]
    finally:
        await database.dispose()


async def test_an_on_loop_session_on_each_backend(database_url: str) -> None:
    """The option changes nothing that a session does (PostgreSQL ignores it)."""
    database = Database(database_url)
    try:
        async with database.session(on_loop=True) as session:
            assert (await session.execute(text("SELECT 1 + 1"))).scalar_one() == 2
    finally:
        await database.dispose()
