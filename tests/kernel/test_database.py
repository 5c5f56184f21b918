"""SQLite's single writer: a second writer waits its busy timeout, then gets ``Busy``
(answered 503 with ``Retry-After``), never SQLAlchemy's "database is locked"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from orchestrion.kernel.db.engine import Database
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

    from orchestrion.kernel.db.sqlite import OneTripConnection

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
