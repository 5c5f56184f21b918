"""SQLite's single writer: a second writer waits its busy timeout, then gets ``Busy``
(answered 503 with ``Retry-After``), never SQLAlchemy's "database is locked"."""

from __future__ import annotations

from pathlib import Path

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
