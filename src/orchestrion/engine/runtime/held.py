"""Step states kept between an execution's transactions, checked against a version.

Loading an execution's step states was a query and a hundred ORM rows per transaction
for a 100-step workflow, the largest cost of a queued step. A worker now keeps the
states its last transaction committed, detached, with the execution's
``states_version``; the next transaction on the execution locks its row (it always
does) and reuses them when the version has not moved, or reloads them.

Every transaction that changes a step state bumps the version (a ``before_flush``
hook on every session, so no writer can forget it): another worker, another process,
the API or an erasure makes the kept copy stale, and it is reloaded. (The hooks see
ORM objects and the kept states they write themselves: any other bulk ``UPDATE
wf_step_states`` statement, which nothing issues today, would have to bump the version
itself.) A transaction that takes the states out of the cache puts them back only once
it has committed; one that rolls back (or a crash) loses them, and the next transaction
reloads. Nothing durable depends on the cache.

Kept states stay detached, outside the unit of work: hooks write the changed ones
before the session flushes or commits, all in one ``UPDATE`` run once per state
(``executemany``: one round trip on PostgreSQL), setting the columns any of them changed,
so an unchanged state costs nothing (attaching a hundred objects cost a millisecond, and
the unit of work wrote one statement per set of changed columns: two for each step of a
chain). Within one session, an execution's states are one set of objects, whoever opens
it again (see :func:`held_states`).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, event, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.base import instance_state
from sqlalchemy.orm.exc import StaleDataError

from orchestrion.engine.models import Execution, StepState

_HELD = "orchestrion.held_states"

_TABLE = cast(Table, StepState.__table__)
#: The SET clause comes from the parameters' keys (the columns that changed).
_UPDATE_STATES = update(_TABLE).where(
    _TABLE.c.execution_id == bindparam("held_execution_id"),
    _TABLE.c.step_id == bindparam("held_step_id"),
)
_BUMP = (
    update(Execution)
    .where(Execution.id.in_(bindparam("ids", expanding=True)))
    .values(states_version=Execution.states_version + 1)
)


@dataclass
class Held:
    """An execution's states as one session holds them (its row locked, or new)."""

    execution: Execution
    states: dict[str, StepState]
    #: Taken from the cache: never attached to the session, their changes are written
    #: by the hooks below.
    detached: bool


def held_states(session: Any, execution_id: str) -> Held | None:
    """The states a transition in ``session`` already holds for this execution."""
    held: dict[str, Held] | None = session.info.get(_HELD)
    return None if held is None else held.get(execution_id)


def hold(
    session: Any, execution: Execution, states: dict[str, StepState], *, detached: bool
) -> None:
    """Record that ``session`` holds ``execution`` (locked, or created here) and its states."""
    session.info.setdefault(_HELD, {})[execution.id] = Held(execution, states, detached)


class StateCache:
    """The step states this process's last transaction on each execution committed."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[int, dict[str, StepState]]] = OrderedDict()

    def take(self, execution_id: str, version: int) -> dict[str, StepState] | None:
        """The kept states if they are still the execution's (``version``), else None.
        Taken out: a transaction owns them until it commits."""
        entry = self._entries.pop(execution_id, None)
        if entry is None or entry[0] != version:
            return None
        states = entry[1]
        for state in states.values():
            inspected = instance_state(state)
            # Still in the session that committed them (it closes right after), or
            # partly expired: not safe to reuse.
            if inspected.session_id is not None or inspected.expired_attributes:
                return None
        return states

    def keep(self, execution: Execution, states: dict[str, StepState]) -> None:
        """Keep what a transaction committed (``execution.states_version`` is current)."""
        self._entries[execution.id] = (execution.states_version, states)
        self._entries.move_to_end(execution.id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, execution_id: str) -> None:
        """Drop what is kept for an execution (it ended)."""
        self._entries.pop(execution_id, None)


def held_entries(session: Any) -> dict[str, Held] | None:
    """Every execution ``session`` holds, by id."""
    held: dict[str, Held] | None = session.info.get(_HELD)
    return held


def take_changed(entry: Held) -> list[tuple[StepState, list[str]]]:
    """The kept states of ``entry`` changed since they were taken, with the columns
    that changed; bumps the execution's ``states_version`` when there are any. The
    caller writes them, then calls :func:`written`."""
    changed: list[tuple[StepState, list[str]]] = []
    if not entry.detached:
        return changed
    for state in entry.states.values():
        keys = instance_state(state).committed_state
        if keys:
            changed.append((state, list(keys)))
    if changed:
        # Its row is locked by this transaction: no one else moves it.
        entry.execution.states_version += 1
    return changed


def written(changed: list[tuple[StepState, list[str]]]) -> None:
    """Mark written states' values committed: unchanged until the next assignment."""
    for state, keys in changed:
        for key in keys:
            set_committed_value(state, key, getattr(state, key))


def write_changed(session: Session) -> dict[str, Held] | None:
    """Write the kept states changed since they were taken, in one statement; returns
    what the session holds."""
    held = held_entries(session)
    if not held:
        return held
    changed: list[tuple[StepState, list[str]]] = []
    for entry in held.values():
        changed += take_changed(entry)
    if changed:
        _update_states(session, changed)
    return held


def _update_states(session: Session, changed: list[tuple[StepState, list[str]]]) -> None:
    # One SET clause for all (the columns any of them changed): one statement, and on
    # PostgreSQL one round trip, where the unit of work made one per set of columns.
    columns = sorted({key for _, keys in changed for key in keys})
    rows = [
        {
            "held_execution_id": state.execution_id,
            "held_step_id": state.step_id,
            **{key: getattr(state, key) for key in columns},
        }
        for state, _ in changed
    ]
    connection = session.connection()
    result = connection.execute(_UPDATE_STATES, rows)
    if result.rowcount != len(rows) and connection.dialect.supports_sane_multi_rowcount:
        # As the unit of work would: a state's row is gone (its execution erased).
        raise StaleDataError(f"{len(rows)} step states written, {result.rowcount} found")
    written(changed)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    # A session whose only changes are to kept states looks clean: its flush (and the
    # before_flush hook) would be skipped and the changes lost.
    write_changed(session)


@event.listens_for(Session, "before_flush")
def _bump_states_version(session: Session, _context: Any, _instances: Any) -> None:
    held = write_changed(session)
    touched = {
        obj.execution_id
        for obj in itertools.chain(session.new, session.dirty, session.deleted)
        if isinstance(obj, StepState)
    }
    if not touched:
        return
    elsewhere = []
    for execution_id in touched:
        entry = held.get(execution_id) if held else None
        if entry is not None:
            # Its row is locked by this transaction (or new in it): no one else moves it.
            entry.execution.states_version += 1
        else:
            elsewhere.append(execution_id)
    if elsewhere:
        # Not locked here: bump in the database, whatever the row holds by now.
        session.connection().execute(_BUMP, {"ids": elsewhere})
