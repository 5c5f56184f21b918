"""Completed tasks deleted with the transaction's next statement on the task table, or
at its commit (PostgreSQL).

A worker's outcome transaction deleted its tasks as soon as it began
(:meth:`~.queue.TaskQueue.complete_many`): a round trip to PostgreSQL of its seven. The
``DELETE`` is held in the session instead (the tasks' ids and their owner) and sent
with a statement that goes out anyway:

- the next task's ``INSERT`` (:meth:`~.queue.TaskQueue.enqueue`), as a data-modifying
  ``WITH`` clause run before the row is inserted (:data:`.statements.INSERT_AFTER_DONE`);
- the statement that writes the transaction at commit, when there is one (the engine's
  :mod:`orchestrion.engine.runtime.folded` takes it with :func:`take`);
- or by itself (:data:`.statements.DONE`): before the queue's other statements on the
  table in the transaction (:func:`send`: drop, park, release, complete...), and at
  commit.

The engine's transactions reach the task table only through the queue's methods. A
statement of one of them that read the table some other way, after ``complete_many``,
would still see the completed tasks until then. (Checking every statement of every
session for the table, with a ``do_orm_execute`` hook, made each ORM statement of the
process prepare itself twice, and cost more CPU than the round trip saved.)

A rollback drops it with the rest of the transaction. It is held only in a transaction
already begun (a worker's has locked its execution by then), never in a savepoint. The
rows deleted and what the transaction reads are the same; the task rows are locked
later in the transaction, still after the execution's row. SQLite deletes at once (no
round trips to save).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from orchestrion.kernel.queue.statements import DONE

_HELD = "orchestrion.queue.done"


def hold(session: Any, task_ids: list[str], owner: str) -> bool:
    """Hold the ``DELETE`` of ``owner``'s completed tasks in the session's transaction;
    False (nothing held) when another owner's tasks are held already, outside a
    transaction (none begun yet: nothing would drop it) or in a savepoint (whose
    rollback would not)."""
    if not session.in_transaction() or session.in_nested_transaction():
        return False
    held: dict[str, Any] | None = session.info.get(_HELD)
    if held is None:
        session.info[_HELD] = {"done_ids": list(task_ids), "done_owner": owner}
        return True
    if held["done_owner"] != owner:
        return False
    held["done_ids"].extend(task_ids)
    return True


def take(session: Any) -> dict[str, Any] | None:
    """The held ``DELETE``'s parameters (``done_ids``, ``done_owner``), no longer held:
    the caller sends them with its statement."""
    params: dict[str, Any] | None = session.info.pop(_HELD, None)
    return params


async def send(session: AsyncSession) -> None:
    """Send the held ``DELETE`` by itself, if there is one (before another statement of
    the queue on the task table)."""
    params = take(session)
    if params is not None:
        await session.execute(DONE, params)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    params = take(session)
    if params is not None:
        session.connection().execute(DONE, params)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction(session: Session, transaction: SessionTransaction) -> None:
    # Taken by then if it committed; a rollback drops it (even one with no statement
    # sent, which has no ``after_rollback``).
    if transaction.parent is None:
        session.info.pop(_HELD, None)
