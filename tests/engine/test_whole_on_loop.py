"""SQLite, ``Database.session(whole_on_loop=True)`` (the worker's transactions): BEGIN
and COMMIT run on the event loop's thread too, unless BEGIN would wait for another
writer or the commit is the one that checkpoints the WAL.

(These test :mod:`orchestrion.kernel.db`; they live with the engine, whose worker is the
one caller.)
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from orchestrion.kernel.db import sqlite as one_trip
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.db.sqlite import CHECKPOINT_EVERY, OneTripConnection


class _Traced:
    """Every statement SQLite runs on the database's connections, with the thread that
    ran it, and the calls handed to the driver's thread."""

    def __init__(self, database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[tuple[str, bool]] = []
        self.trips = 0
        loop_thread = threading.get_ident()

        @event.listens_for(database.engine.sync_engine, "connect")
        def _trace(dbapi_connection: Any, _record: Any) -> None:
            raw = dbapi_connection.driver_connection._conn
            raw.set_trace_callback(
                lambda sql: self.statements.append((sql, threading.get_ident() == loop_thread))
            )

        original = OneTripConnection._execute

        async def counted(connection: OneTripConnection, fn: Any, *args: Any, **kw: Any) -> Any:
            self.trips += 1
            return await original(connection, fn, *args, **kw)  # type: ignore[no-untyped-call]

        monkeypatch.setattr(OneTripConnection, "_execute", counted)

    def clear(self) -> None:
        self.statements.clear()
        self.trips = 0

    def ends(self) -> list[tuple[str, bool]]:
        return [
            (sql, here) for sql, here in self.statements if sql in ("BEGIN IMMEDIATE", "COMMIT")
        ]


async def test_begin_and_commit_run_on_the_loop_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'whole.db'}")
    traced = _Traced(database, monkeypatch)
    try:
        async with database.session() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
        traced.clear()
        async with database.session(whole_on_loop=True) as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
        assert traced.ends() == [("BEGIN IMMEDIATE", True), ("COMMIT", True)]
        assert traced.trips == 0  # not one hand-over to the driver's thread

        traced.clear()  # the other sessions are as they were
        async with database.session(on_loop=True) as session:
            await session.execute(text("INSERT INTO t VALUES (2)"))
        assert traced.ends() == [("BEGIN IMMEDIATE", False), ("COMMIT", False)]
        async with database.session() as session:
            values = (await session.execute(text("SELECT x FROM t ORDER BY x"))).scalars()
            assert list(values) == [1, 2]
            timeout = (await session.execute(text("PRAGMA busy_timeout"))).scalar_one()
            assert timeout == 5000  # the loop's BEGIN set it back
    finally:
        await database.dispose()


async def test_begin_waits_on_the_driver_thread_while_another_writer_holds_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock taken (another process, here another Database on the file): BEGIN fails
    at once on the loop, then waits for the lock on the driver's thread, as before."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    holder, waiter = Database(url), Database(url)
    traced = _Traced(waiter, monkeypatch)
    try:
        async with holder.session() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
        async with waiter.session() as session:  # the waiter's connection, made
            await session.execute(text("SELECT 1"))
        locked = asyncio.Event()

        async def hold() -> None:
            async with holder.session() as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))  # takes the lock
                locked.set()
                await asyncio.sleep(0.3)

        holding = asyncio.create_task(hold())
        await locked.wait()
        traced.clear()
        async with waiter.session(whole_on_loop=True) as session:
            await session.execute(text("INSERT INTO t VALUES (2)"))
        await holding
        begins = [here for sql, here in traced.statements if sql == "BEGIN IMMEDIATE"]
        assert begins == [True, False]  # tried on the loop, then waited on the thread
        async with waiter.session() as session:
            values = (await session.execute(text("SELECT x FROM t ORDER BY x"))).scalars()
            assert list(values) == [1, 2]
            timeout = (await session.execute(text("PRAGMA busy_timeout"))).scalar_one()
            assert timeout == 5000
    finally:
        await holder.dispose()
        await waiter.dispose()


async def test_the_wal_is_still_checkpointed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits on the loop never checkpoint; one in ``CHECKPOINT_EVERY`` goes to the
    driver's thread, and the WAL is checkpointed there once past SQLite's threshold: it
    stays far smaller than everything written."""
    path = tmp_path / "wal.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    traced = _Traced(database, monkeypatch)
    transactions = 20 * CHECKPOINT_EVERY
    try:
        async with database.session() as session:
            await session.execute(text("CREATE TABLE t (x BLOB)"))
        traced.clear()
        for _ in range(transactions):
            async with database.session(whole_on_loop=True) as session:
                # About 10 pages of 4 KiB each: 3,200 pages in all, past 1,000 often.
                await session.execute(text("INSERT INTO t VALUES (randomblob(40000))"))
        commits = [here for sql, here in traced.ends() if sql == "COMMIT"]
        assert len(commits) == transactions
        assert commits.count(False) == transactions // CHECKPOINT_EVERY
        written = transactions * 40000
        wal = await asyncio.to_thread(os.path.getsize, f"{path}-wal")
        assert 0 < wal < written / 2
    finally:
        await database.dispose()


def test_one_commit_in_checkpoint_every_goes_to_the_driver_thread() -> None:
    """The counter a database's connections share: which commits may skip checkpoints."""
    commits = one_trip.Commits()
    turns = [commits.on_loop() for _ in range(3 * CHECKPOINT_EVERY)]
    assert turns.count(False) == 3
    assert turns[CHECKPOINT_EVERY - 1] is False
