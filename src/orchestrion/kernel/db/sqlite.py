"""SQLite connections with one trip to the driver's thread per statement, or none.

aiosqlite runs every call on its connection's thread and the event loop waits for each:
SQLAlchemy's adapter made four of them per statement (open a cursor, execute, fetch the
rows, close the cursor), each a hand-over between threads that cost more than SQLite's
work for a small statement. Here a statement is one call that runs it, reads what
SQLAlchemy will ask for (rows, description, row count, last row id) and closes its
cursor; the cursor the adapter holds only hands them back.

Everything else (the thread, transactions, ``close``) is aiosqlite's. Rows are read
whole, so a server-side cursor gets them at once, as the adapter's client-side cursor
always did.

A connection can also run its statements on the event loop's thread, with no trip at
all (:attr:`OneTripConnection.on_loop`, set at the start of each transaction by the
``begin`` listener of :mod:`.engine`, for sessions opened with
``Database.session(on_loop=True)``). Only inside a transaction, that is once ``BEGIN
IMMEDIATE`` has taken SQLite's write lock, and only in WAL mode: there a statement never
waits on another connection (no other writer can hold the lock, readers never block),
so it costs SQLite's work alone, microseconds for the engine's small statements.
``BEGIN IMMEDIATE`` (which may wait up to the busy timeout), ``COMMIT`` (which may
checkpoint the WAL and sync) and ``ROLLBACK`` stay on the driver's thread. The sqlite3
connection is opened with ``check_same_thread=False`` and its two threads never use it
at once: a statement runs on the loop only when no call to the driver's thread is
queued or running (one left running by a cancelled await included). The price is that
the whole process waits while such a statement runs: only for small, bounded
transactions, never a report or a long list.

A connection may also begin and commit there (:attr:`OneTripConnection.whole_on_loop`,
for sessions opened with ``Database.session(whole_on_loop=True)``): two hand-overs per
transaction fewer, each two thread wake-ups, which cost most on a loaded machine (a
sixth of a queued step's time under load). ``BEGIN IMMEDIATE`` runs here with a busy
timeout of zero: when the write lock is free (as it is unless another process holds it:
this process's transactions queue on an asyncio lock first) it takes it at once, and
otherwise it fails at once and goes to the driver's thread, to wait as before.
``COMMIT`` runs here with automatic checkpoints off for the connection, so that it only
writes the transaction's pages to the WAL file (the page cache: microseconds); one
commit in :data:`CHECKPOINT_EVERY` of the database's (and every commit of any other
session) goes to the driver's thread with them on, and checkpoints the WAL there once it
is past SQLite's threshold (1000 pages), as every commit did.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any

import aiosqlite
from sqlalchemy.engine import make_url

_Outcome = tuple[list[Any] | None, Any, int, int | None]
_BEGIN = "BEGIN IMMEDIATE"
#: One commit of a database's ``whole_on_loop`` transactions in this many goes to the
#: driver's thread and may checkpoint the WAL (the others run on the loop and do not).
CHECKPOINT_EVERY = 16


class Commits:
    """The commits of one database's connections that could run on the loop: every
    :data:`CHECKPOINT_EVERY`-th goes to the driver's thread instead, to checkpoint."""

    def __init__(self) -> None:
        self.count = 0

    def on_loop(self) -> bool:
        """Whether the next such commit may run on the loop (without checkpointing)."""
        self.count += 1
        return self.count % CHECKPOINT_EVERY != 0


def _run(connection: sqlite3.Connection, sql: str, parameters: Any) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.execute(sql, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return rows, description, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_many(connection: sqlite3.Connection, sql: str, parameters: Any) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(sql, parameters)
        return None, cursor.description, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(aiosqlite.Cursor):
    """A cursor whose statement runs, and is read, in one call on the driver's thread
    (or on the calling thread, when its connection allows: see the module)."""

    def __init__(self, connection: OneTripConnection) -> None:
        self.iter_chunk_size = connection._iter_chunk_size
        self._conn: OneTripConnection = connection
        self._rows: list[Any] = []
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    async def _call(self, fn: Callable[..., _Outcome], sql: str, parameters: Any) -> None:
        connection = self._conn
        outcome: _Outcome | None = None
        if connection.on_loop and connection.can_run_here():
            outcome = fn(connection._conn, sql, parameters)
        elif connection.whole_on_loop and sql == _BEGIN and connection.can_begin_here():
            outcome = connection.begin_here(fn, sql, parameters)
        if outcome is None:
            outcome = await connection._execute(lambda: fn(connection._conn, sql, parameters))
        rows, self._description, self._rowcount, self._lastrowid = outcome
        self._rows = rows or []

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> OneTripCursor:
        """Run ``sql`` and read its rows, in one call."""
        await self._call(_run, sql, () if parameters is None else parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> OneTripCursor:
        """Run ``sql`` once per parameter set, in one call."""
        await self._call(_run_many, sql, parameters)
        return self

    async def fetchone(self) -> Any:
        """The next row read, or None."""
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        """Up to ``size`` (``arraysize``) of the rows read."""
        count = self._arraysize if size is None else size
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def fetchall(self) -> Sequence[Any]:
        """The rows read and not yet fetched."""
        taken, self._rows = self._rows, []
        return taken

    def __await__(self) -> Generator[Any, None, OneTripCursor]:
        return self._itself().__await__()

    async def _itself(self) -> OneTripCursor:
        return self

    async def close(self) -> None:
        """Nothing to do: the statement's cursor was closed when it ran."""
        self._rows = []

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement (-1 for a query)."""
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:
        """The row id of the last inserted row."""
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        """Rows ``fetchmany`` returns by default."""
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    @property
    def description(self) -> Any:
        """The columns of the last query's rows (None for other statements)."""
        return self._description


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors are :class:`OneTripCursor`.

    ``wal``: whether the database is in WAL mode, ``busy_timeout_ms`` and
    ``autocheckpoint`` its settings (set when the connection is set up); ``on_loop``:
    whether this transaction's statements may run on the event loop's thread,
    ``whole_on_loop``: its ``BEGIN`` and ``COMMIT`` too (both set at each ``begin``, see
    the module's docstring). ``commits`` is shared by the database's connections.
    """

    def __init__(
        self,
        connector: Callable[[], sqlite3.Connection],
        iter_chunk_size: int,
        commits: Commits | None = None,
    ) -> None:
        super().__init__(connector, iter_chunk_size)
        self.wal = False
        self.on_loop = False
        self.whole_on_loop = False
        self.busy_timeout_ms = 0
        self.autocheckpoint = 1000
        self.commits = commits or Commits()
        # Whether SQLite checkpoints at commit on this connection (commits on the loop
        # turn it off, those on the driver's thread back on).
        self._checkpointing = True
        # Calls handed to the driver's thread, and those it finished (each counter
        # written by one thread only): equal when the thread has nothing to do. (A call
        # aiosqlite refuses, on a closed connection, leaves them unequal: no matter,
        # nothing runs here on a closed connection.)
        self._handed = 0
        self._finished = 0

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def tracked() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                self._finished += 1

        self._handed += 1
        return await super()._execute(tracked)  # type: ignore[no-untyped-call]

    def can_run_here(self) -> bool:
        """Whether a statement may run on the calling thread now: inside a transaction
        (the write lock held), with nothing queued or running on the driver's thread."""
        connection = self._connection
        return (
            self._running
            and connection is not None
            and self._handed == self._finished
            and connection.in_transaction
        )

    def can_begin_here(self) -> bool:
        """Whether ``BEGIN`` may be tried on the calling thread: outside a transaction,
        nothing queued or running on the driver's thread."""
        connection = self._connection
        return (
            self._running
            and self.wal
            and connection is not None
            and self._handed == self._finished
            and not connection.in_transaction
        )

    def begin_here(self, fn: Callable[..., _Outcome], sql: str, parameters: Any) -> _Outcome | None:
        """Run ``BEGIN IMMEDIATE`` on the calling thread if the write lock is free now;
        None when another connection holds it (nothing happened: wait on the driver's
        thread)."""
        connection = self._conn
        connection.execute("PRAGMA busy_timeout=0")
        try:
            return fn(connection, sql, parameters)
        except sqlite3.OperationalError as exc:
            # SQLITE_BUSY, or one of its extended codes (recovery, snapshot).
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY:
                return None
            raise
        finally:
            connection.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")

    async def commit(self) -> None:
        """Commit: on the calling thread, without checkpointing, when this transaction
        may (``whole_on_loop``) and it is not this commit's turn to checkpoint; else on
        the driver's thread, checkpointing when the WAL has grown past the threshold."""
        if self.whole_on_loop and self.can_run_here() and self.commits.on_loop():
            self._commit(checkpoint=False)
            return
        await self._execute(self._commit, checkpoint=True)

    def _commit(self, *, checkpoint: bool) -> None:
        connection = self._conn
        if checkpoint != self._checkpointing:
            pages = self.autocheckpoint if checkpoint else 0
            connection.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")
            self._checkpointing = checkpoint
        connection.commit()

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        """A cursor, without a call to the driver's thread (used as ``async with``
        or awaited, like aiosqlite's)."""
        return OneTripCursor(self)


def async_creator(url: str) -> Callable[[], Any]:
    """For ``create_async_engine(async_creator=...)``: connects as the aiosqlite dialect
    would for ``url`` (same file and options), with :class:`OneTripConnection`."""
    from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

    parsed = make_url(url)
    dialect = SQLiteDialect_aiosqlite(dbapi=SQLiteDialect_aiosqlite.import_dbapi())
    args, options = dialect.create_connect_args(parsed)
    database = args[0] if args else options.pop("database", ":memory:")
    options = {k: v for k, v in options.items() if k != "database"}

    commits = Commits()

    async def connect() -> OneTripConnection:
        def connector() -> sqlite3.Connection:
            # Used from the event loop's thread too, never at once (see the module).
            connection: sqlite3.Connection = sqlite3.connect(
                database, **{**options, "check_same_thread": False}
            )
            return connection

        connection = OneTripConnection(connector, 64, commits)
        connection._thread.daemon = True
        await connection
        return connection

    return connect
