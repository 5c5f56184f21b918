"""A worker's outcome transaction written at commit without the unit of work, and on
PostgreSQL in one statement, one round trip.

At commit, a worker's outcome transaction wrote three things, each a round trip to
PostgreSQL: its kept step states (one ``UPDATE`` run once per state, see :mod:`.held`),
its new log entries (one ``INSERT`` run once per entry, see :mod:`.log`) and the
execution's row (the unit of work's ``UPDATE``). On PostgreSQL they are one statement
here: the entries and the states go as two JSON documents, turned back into rows by
``jsonb_to_recordset``, in data-modifying ``WITH`` clauses of the execution's
``UPDATE``; it returns how many states it found, so that a state whose row is gone fails
the transaction as before. Same transaction, same values, same columns: only the round
trips change (two fewer of a queued step's 9.5). A JSON column set to ``None`` stores
JSON ``null``, as SQLAlchemy's JSON type binds it. The completed tasks' ``DELETE`` the
queue holds until then, when no other statement took it (a step with no next task, a
branch of a fan-out: see :mod:`orchestrion.kernel.queue.completions`), is one more
``WITH`` clause.

On SQLite (no round trips to save) the states and the entries are written by their own
hooks' statements, and the execution's row by a prebuilt ``UPDATE`` of the columns that
changed. On both, the execution is then marked written, so the unit of work's flush,
which walked it (about a tenth of the transaction's Python work), has nothing to do.

It applies when the session holds exactly one execution, with kept (detached) states
(a worker's outcome or start transaction), and on PostgreSQL when its log entries are
all that execution's. Anything else (a new execution, attached states, several
executions) is written by the hooks of :mod:`.held`, :mod:`.log` and the unit of work, as
before.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Column, String, Table, Update, bindparam, event, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.orm.base import instance_state
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql.elements import BindParameter, TextClause
from sqlalchemy.types import JSON

from orchestrion.engine.models import Execution, ExecutionEvent, StepState
from orchestrion.engine.runtime import log
from orchestrion.engine.runtime.held import (
    Held,
    held_entries,
    take_changed,
    write_changed,
    written,
)
from orchestrion.kernel.queue import completions
from orchestrion.kernel.queue.models import Task

_EXECUTIONS = cast(Table, Execution.__table__)
_STATES = cast(Table, StepState.__table__)
_EVENTS = cast(Table, ExecutionEvent.__table__)
_TASKS = cast(Table, Task.__table__)
_EVENT_COLUMNS = ("seq", "type", "step_id", "data", "at")
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _is_json(column: Column[Any]) -> bool:
    return isinstance(column.type, JSON)


def _record(table: Table, names: tuple[str, ...]) -> str:
    """``r(name type, ...)``: the columns of ``jsonb_to_recordset``'s rows."""
    return ", ".join(f"{name} {table.c[name].type.compile(dialect=_DIALECT)}" for name in names)


def _value(table: Table, name: str) -> str:
    # JSON null for None (``jsonb_to_recordset`` gives SQL NULL), as the JSON type binds.
    return f"coalesce(r.{name}, 'null'::jsonb)" if _is_json(table.c[name]) else f"r.{name}"


# The statement's text is made of the models' table and column names only; every value
# is a bind parameter.
@cache
def _statement(
    execution_columns: tuple[str, ...], state_columns: tuple[str, ...], events: bool, done: bool
) -> TextClause:
    """The statement for a set of changed columns (a handful of shapes: built once)."""
    clauses = []
    params: list[BindParameter[Any]] = []
    if events:
        names = ", ".join(_EVENT_COLUMNS)
        values = ", ".join(_value(_EVENTS, name) for name in _EVENT_COLUMNS)
        clauses.append(
            f"events AS (INSERT INTO {_EVENTS.name} (execution_id, {names})"  # noqa: S608
            f" SELECT :execution_id, {values}"
            f" FROM jsonb_to_recordset(CAST(CAST(:events AS text) AS jsonb))"
            f" AS r({_record(_EVENTS, _EVENT_COLUMNS)}))"
        )
    if state_columns:
        sets = ", ".join(f"{name} = {_value(_STATES, name)}" for name in state_columns)
        clauses.append(
            f"states AS (UPDATE {_STATES.name} AS s SET {sets}"  # noqa: S608
            f" FROM jsonb_to_recordset(CAST(CAST(:states AS text) AS jsonb))"
            f" AS r({_record(_STATES, ('step_id', *state_columns))})"
            f" WHERE s.execution_id = :execution_id AND s.step_id = r.step_id RETURNING 1)"
        )
    if done:
        # The completed tasks' DELETE the queue held (kernel/queue/completions.py).
        clauses.append(
            f"done AS (DELETE FROM {_TASKS.name}"  # noqa: S608
            " WHERE id = ANY(:done_ids) AND lease_owner = :done_owner)"
        )
        params += [
            bindparam("done_ids", type_=postgresql.ARRAY(String)),
            bindparam("done_owner", type_=String),
        ]
    found = "(SELECT count(*) FROM states)" if state_columns else "0"
    if execution_columns:
        sets = ", ".join(f"{name} = :e_{name}" for name in execution_columns)
        main = (
            f"UPDATE {_EXECUTIONS.name} SET {sets} WHERE id = :execution_id"  # noqa: S608
            f" RETURNING {found}"
        )
    else:
        main = f"SELECT {found}"
    sql = ("WITH " + ", ".join(clauses) + " " if clauses else "") + main
    params += [bindparam(f"e_{name}", type_=_EXECUTIONS.c[name].type) for name in execution_columns]
    return text(sql).bindparams(*params)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        # As ``UTCDateTime`` binds it: naive values are UTC.
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=_json_default)


def _worker_entry(session: Session) -> Held | None:
    """The one execution the session holds, with kept states and a persistent row."""
    held = held_entries(session)
    if not held or len(held) != 1:
        return None
    (entry,) = held.values()
    inspected = instance_state(entry.execution)
    if not entry.detached or not inspected.persistent or inspected.session_id != session.hash_key:
        return None
    return entry


def write_folded(session: Session) -> None:
    """Write the session's held execution, its kept states and its log entries (in one
    statement on PostgreSQL), when it qualifies (see the module); otherwise leave them
    to the hooks and the unit of work."""
    entry = _worker_entry(session)
    if entry is None:
        return
    execution = entry.execution
    if session.get_bind().dialect.name != "postgresql":
        _write_apart(session, entry)
        return
    rows = log.pending(session)
    if any(row["execution_id"] != execution.id for row in rows):
        return
    changed = take_changed(entry)
    inspected = instance_state(execution)
    execution_columns = tuple(sorted(inspected.committed_state))
    if not (rows or changed or execution_columns):
        return
    state_columns = tuple(sorted({key for _, keys in changed for key in keys}))
    params: dict[str, Any] = {"execution_id": execution.id}
    if rows:
        params["events"] = _dumps([{name: row[name] for name in _EVENT_COLUMNS} for row in rows])
    if changed:
        params["states"] = _dumps(
            [
                {"step_id": state.step_id, **{key: getattr(state, key) for key in state_columns}}
                for state, _ in changed
            ]
        )
    for name in execution_columns:
        params[f"e_{name}"] = getattr(execution, name)
    done = completions.take(session)
    if done is not None:
        params.update(done)
    statement = _statement(execution_columns, state_columns, bool(rows), done is not None)
    found = session.connection().execute(statement, params).scalar_one_or_none()
    if changed and found != len(changed):
        # As the unit of work would: a state's row is gone (its execution erased).
        raise StaleDataError(f"{len(changed)} step states written, {found} found")
    if execution_columns and found is None:
        raise StaleDataError("the execution's row is gone")
    rows.clear()
    written(changed)
    _written(session, execution)


def _write_apart(session: Session, entry: Held) -> None:
    """SQLite: the states and the entries by their hooks' statements, the execution's
    row by a prebuilt ``UPDATE`` (the unit of work's flush of one object cost more than
    the statement)."""
    write_changed(session)  # first: it bumps the execution's ``states_version``
    log.write(session)
    execution = entry.execution
    columns = tuple(sorted(instance_state(execution).committed_state))
    if not columns:
        return
    params = {f"e_{name}": getattr(execution, name) for name in columns}
    params["e__id"] = execution.id
    result = session.connection().execute(_execution_update(columns), params)
    if result.rowcount != 1:
        raise StaleDataError("the execution's row is gone")
    _written(session, execution)


@cache
def _execution_update(columns: tuple[str, ...]) -> Update:
    return (
        update(_EXECUTIONS)
        .where(_EXECUTIONS.c.id == bindparam("e__id"))
        .values({name: bindparam(f"e_{name}") for name in columns})
    )


def _written(session: Session, execution: Execution) -> None:
    """The execution's row now holds its values: nothing left for the unit of work
    (whose flush would otherwise still walk it)."""
    inspected = instance_state(execution)
    inspected._commit_all(inspected.dict, session.identity_map)


# First among the hooks at commit: what it writes, the others find written.
event.listen(Session, "before_commit", write_folded, insert=True)
