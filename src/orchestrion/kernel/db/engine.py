"""Engine and sessions, configured for SQLite or PostgreSQL.

SQLite runs in WAL mode with foreign keys on, a busy timeout, and ``BEGIN IMMEDIATE``
for every transaction, so two writers queue on the lock instead of failing later with
"database is locked" on upgrade from a read transaction.

Within one process, SQLite transactions also queue on an asyncio lock: SQLite's own
busy handler waits by sleeping (1, 2, 5, 10... ms), which made every contended
transaction pay milliseconds; handing the lock over in order costs microseconds. Other
processes on the same file still queue on SQLite's lock.

``session(on_loop=True)`` is for the engine's small, bounded transactions: on SQLite,
once ``BEGIN IMMEDIATE`` holds the write lock, their statements run on the event loop's
thread instead of a trip to the driver's thread each (see :mod:`.sqlite`);
``session(whole_on_loop=True)``, their ``BEGIN`` and ``COMMIT`` too, when neither has to
wait or checkpoint.

PostgreSQL connections are checked as they leave the pool, but only one that sat idle
is pinged: SQLAlchemy's ``pool_pre_ping`` pinged at every checkout, three round trips
with asyncpg (``BEGIN``, a query, ``ROLLBACK``), a quarter of a queued step's. A
connection the server closed (a restart, a terminated backend) is known without asking:
asyncpg has seen its socket close. One idle for longer than ``ping_after_idle`` seconds
(where a firewall or an idle timeout may have dropped it silently) is pinged. A dead one
invalidates the pool and is replaced, as a failed pre-ping did.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from orchestrion.kernel.db.sqlite import OneTripConnection, async_creator
from orchestrion.kernel.errors import Busy
from orchestrion.kernel.observability import tracing


def is_sqlite(url: str) -> bool:
    """Whether ``url`` points to SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


#: The execution option (on the connection) of a session whose statements may run on
#: the event loop's thread (SQLite): see :meth:`Database.session`.
ON_LOOP = "orchestrion_on_loop"
#: The execution option of a session whose BEGIN and COMMIT may run there too.
WHOLE_ON_LOOP = "orchestrion_whole_on_loop"


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        mode = cursor.fetchone()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        driver = dbapi_connection.driver_connection
        if isinstance(driver, OneTripConnection):
            # Not WAL (an in-memory database): a writer's statement could wait for
            # readers, so none runs on the loop.
            driver.wal = mode is not None and str(mode[0]).lower() == "wal"
            driver.busy_timeout_ms = int(busy_timeout_ms)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA wal_autocheckpoint")
            pages = cursor.fetchone()
            cursor.close()
            if pages is not None:
                driver.autocheckpoint = int(pages[0])

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        driver = connection.connection.driver_connection
        if not isinstance(driver, OneTripConnection):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        options = connection.get_execution_options()
        # BEGIN itself may wait for the lock: the driver's thread, unless the session
        # asked for the whole transaction on the loop and the lock is free at once.
        driver.on_loop = False
        driver.whole_on_loop = driver.wal and bool(options.get(WHOLE_ON_LOOP))
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        driver.on_loop = driver.wal and bool(options.get(ON_LOOP))


#: ``ConnectionRecord.info`` key: when the connection went back to the pool.
_IDLE_SINCE = "orchestrion_idle_since"


def _configure_postgres(engine: AsyncEngine, ping_after_idle: float) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        driver = record.driver_connection
        if driver is None or driver.is_closed():
            raise InvalidatePoolError("the server closed the connection")
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is not None and time.monotonic() - idle_since > ping_after_idle:
            try:
                dbapi_connection.ping()
            except Exception as exc:
                raise InvalidatePoolError(f"the idle connection is dead: {exc}") from exc


def _locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite giving up on its writer lock ("database is locked")."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


class Database:
    """One engine and session factory per process, for one database URL."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = 10,
        busy_timeout_ms: int = 5000,
        ping_after_idle: float = 5.0,
    ) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if is_sqlite(url):
            database = make_url(url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            # The driver runs in autocommit mode (``isolation_level = None``): a
            # transaction is only ever our ``BEGIN IMMEDIATE``, which SQLAlchemy ends
            # (commit, or rollback when a connection is closed inside it). The pool's
            # rollback on every check-in was one more round trip to the driver's thread
            # per transaction, for nothing.
            kwargs.update(pool_reset_on_return=None)
            # One trip to the driver's thread per statement instead of four (see
            # :mod:`.sqlite`).
            kwargs.update(async_creator=async_creator(url))
        else:
            kwargs.update(pool_size=pool_size)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if is_sqlite(url):
            _configure_sqlite(self.engine, busy_timeout_ms)
        else:
            _configure_postgres(self.engine, ping_after_idle)
        tracing.instrument_engine(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # The same pool and listeners, its connections marked with ``ON_LOOP`` (and
        # ``WHOLE_ON_LOOP``).
        self._on_loop_sessionmaker = self.sessionmaker
        self._whole_on_loop_sessionmaker = self.sessionmaker
        if is_sqlite(url):
            self._on_loop_sessionmaker = async_sessionmaker(
                self.engine.execution_options(**{ON_LOOP: True}), expire_on_commit=False
            )
            self._whole_on_loop_sessionmaker = async_sessionmaker(
                self.engine.execution_options(**{ON_LOOP: True, WHOLE_ON_LOOP: True}),
                expire_on_commit=False,
            )
        self._busy_timeout = busy_timeout_ms / 1000
        self._serial: asyncio.Lock | None = asyncio.Lock() if is_sqlite(url) else None

    @asynccontextmanager
    async def session(
        self, *, on_loop: bool = False, whole_on_loop: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block succeeds, rolled back when it raises.

        This is the one place that commits; service code only flushes.

        ``on_loop``: on SQLite, run the transaction's statements on the event loop's
        thread once the write lock is held (``BEGIN`` and ``COMMIT`` still go to the
        driver's thread). Saves a thread hand-over per statement, but every coroutine
        of the process waits while a statement runs: only for small transactions with
        bounded statements (the engine's claims and outcomes), never for a query whose
        cost grows with the data (a report, a list). No effect on PostgreSQL.

        ``whole_on_loop``: ``on_loop``, and ``BEGIN`` and ``COMMIT`` there too when
        ``BEGIN`` finds the write lock free and the commit is not one that checkpoints
        the WAL (see :mod:`.sqlite`): two hand-overs fewer per transaction.
        """
        if self._serial is None:
            async with self._unit_of_work() as session:
                yield session
            return
        try:
            async with asyncio.timeout(self._busy_timeout):
                await self._serial.acquire()
        except TimeoutError:
            raise Busy("the database stayed busy (SQLite writer lock)") from None
        try:
            async with self._unit_of_work(on_loop, whole_on_loop) as session:
                yield session
        finally:
            self._serial.release()

    @asynccontextmanager
    async def _unit_of_work(
        self, on_loop: bool = False, whole_on_loop: bool = False
    ) -> AsyncIterator[AsyncSession]:
        sessionmaker = self.sessionmaker
        if whole_on_loop:
            sessionmaker = self._whole_on_loop_sessionmaker
        elif on_loop:
            sessionmaker = self._on_loop_sessionmaker
        async with sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException as exc:
                await session.rollback()
                if self._serial is not None and _locked(exc):
                    # SQLite's busy timeout ran out: the same 503 as a wait on our lock.
                    raise Busy("the database stayed busy (SQLite writer lock)") from exc
                raise

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
