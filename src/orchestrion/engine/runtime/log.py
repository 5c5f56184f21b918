"""The log's new entries, written with one prebuilt ``INSERT`` when the session flushes.

An ``ExecutionEvent`` object per entry, flushed by the unit of work, cost more than
the ``INSERT`` itself (a queued step appends two). A transition appends plain rows to
its session instead; hooks on every session write them all in one statement run once
per row (``executemany``: one round trip on PostgreSQL) before it flushes (an autoflush
before a query included: a query of the log sees them) or commits. Their execution's
row exists by then: :func:`~.starting.start_execution` flushes it before the first
entry. A rollback drops the rows not yet written, with the transaction.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from orchestrion.engine.models import ExecutionEvent

_PENDING = "orchestrion.log"
_INSERT = insert(cast(Table, ExecutionEvent.__table__))


def append(session: AsyncSession, row: dict[str, Any]) -> None:
    """Add a row of ``wf_execution_events`` to the session's transaction."""
    session.info.setdefault(_PENDING, []).append(row)


def pending(session: Any) -> list[dict[str, Any]]:
    """The rows appended to the session's transaction and not written yet (the list
    itself: a writer empties it)."""
    rows: list[dict[str, Any]] = session.info.get(_PENDING, [])
    return rows


def write(session: Session) -> None:
    """Write the rows appended to the session's transaction, in one statement."""
    rows = session.info.pop(_PENDING, None)
    if rows:
        session.connection().execute(_INSERT, rows)


@event.listens_for(Session, "before_flush")
def _write_before_flush(session: Session, _context: Any, _instances: Any) -> None:
    write(session)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    write(session)


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
