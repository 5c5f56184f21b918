"""SQLite connections with one trip to the driver's thread per statement.

aiosqlite runs every call on its connection's thread and the event loop waits for each:
SQLAlchemy's adapter made four of them per statement (open a cursor, execute, fetch the
rows, close the cursor), each a hand-over between threads that cost more than SQLite's
work for a small statement. Here a statement is one call that runs it, reads what
SQLAlchemy will ask for (rows, description, row count, last row id) and closes its
cursor; the cursor the adapter holds only hands them back.

Everything else (the thread, transactions, ``close``) is aiosqlite's. Rows are read
whole, so a server-side cursor gets them at once, as the adapter's client-side cursor
always did.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any

import aiosqlite
from sqlalchemy.engine import make_url

_Outcome = tuple[list[Any] | None, Any, int, int | None]


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
    """A cursor whose statement runs, and is read, in one call on the driver's thread."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.iter_chunk_size = connection._iter_chunk_size
        self._conn = connection
        self._rows: list[Any] = []
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    async def _call(self, fn: Callable[..., _Outcome], sql: str, parameters: Any) -> None:
        connection = self._conn
        outcome: _Outcome = await connection._execute(  # type: ignore[no-untyped-call]
            lambda: fn(connection._conn, sql, parameters)
        )
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
    """An aiosqlite connection whose cursors are :class:`OneTripCursor`."""

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

    async def connect() -> OneTripConnection:
        def connector() -> sqlite3.Connection:
            connection: sqlite3.Connection = sqlite3.connect(database, **options)
            return connection

        connection = OneTripConnection(connector, 64)
        connection._thread.daemon = True
        await connection
        return connection

    return connect
