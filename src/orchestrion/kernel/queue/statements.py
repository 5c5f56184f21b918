"""The queue's PostgreSQL statements that do in one round trip what took several.

- :data:`CLAIM`: the claim. It took four statements in one transaction (the due tasks'
  ids ``FOR UPDATE SKIP LOCKED``, the spent ones moved to the dead letters, the others
  leased, their rows read back); here one ``UPDATE`` of the rows a ``WITH`` clause
  locks, each row leased or dead-lettered by a ``CASE`` on the same test
  (``attempts >= :max_attempts``), returning the rows as they now are.
- :data:`DONE`: completed tasks' ``DELETE`` (see :mod:`.completions`), sent by itself.
- :data:`INSERT_AFTER_DONE` (and its keyed form): a task's ``INSERT`` that first
  deletes completed tasks, in a data-modifying ``WITH`` clause. The inserted row is
  selected only once the clause has run (a count of its rows), so the ``INSERT``, its
  key's conflict check included, sees those tasks deleted, as it did when the
  ``DELETE`` was its own earlier statement.

Built once, with bind parameters (building a statement per call cost more CPU than the
database spent running it).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Integer, String, Table, any_, bindparam, case, delete, func, or_, select
from sqlalchemy import update as update_
from sqlalchemy.dialects import postgresql

from orchestrion.kernel.queue.models import Task

TABLE = cast(Table, Task.__table__)
_c = TABLE.c

#: Every column a task's ``INSERT`` sets (the ones it leaves out are bound as None).
COLUMNS = (
    "id",
    "queue",
    "key",
    "group_key",
    "kind",
    "subject",
    "payload",
    "priority",
    "run_at",
    "attempts",
    "lease_owner",
    "lease_expires_at",
    "created_at",
    "traceparent",
)


def _claim() -> Any:
    now = bindparam("now", type_=_c.run_at.type)
    due = (
        select(_c.id)
        .where(
            _c.queue == bindparam("queue", type_=String),
            _c.run_at <= now,
            or_(_c.lease_expires_at.is_(None), _c.lease_expires_at < now),
        )
        .order_by(_c.priority.desc(), _c.run_at)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    expires = bindparam("expires", type_=_c.lease_expires_at.type)
    spent = _c.attempts >= bindparam("max_attempts", type_=Integer)

    def unless_spent(leased: Any, dead: Any) -> Any:
        return case((spent, dead), else_=leased)

    return (
        update_(TABLE)
        .where(_c.id == due.c.id)
        .values(
            queue=unless_spent(_c.queue, bindparam("dead_queue", type_=String)),
            lease_owner=unless_spent(bindparam("owner", type_=String), None),
            lease_expires_at=unless_spent(expires, None),
            run_at=unless_spent(_c.run_at, now),
            # Out of its group: cancelling or pausing the work keeps the record.
            group_key=unless_spent(_c.group_key, None),
            attempts=unless_spent(_c.attempts + 1, _c.attempts),
        )
        .returning(
            _c.id,
            _c.queue,
            _c.key,
            _c.payload,
            _c.attempts,
            _c.run_at,
            _c.traceparent,
        )
    )


CLAIM = _claim()

_DONE_WHERE = (
    _c.id == any_(bindparam("done_ids", type_=postgresql.ARRAY(String))),
    _c.lease_owner == bindparam("done_owner", type_=String),
)
DONE = delete(TABLE).where(*_DONE_WHERE)


def _insert_after_done(keyed: bool) -> Any:
    done = delete(TABLE).where(*_DONE_WHERE).returning(_c.id).cte("done")
    row = select(*(bindparam(name, type_=_c[name].type) for name in COLUMNS)).where(
        select(func.count()).select_from(done).scalar_subquery() >= 0
    )
    insert = postgresql.insert(TABLE).from_select(list(COLUMNS), row)
    return insert.on_conflict_do_nothing(index_elements=["key"]) if keyed else insert


INSERT_AFTER_DONE = _insert_after_done(keyed=False)
INSERT_AFTER_DONE_KEYED = _insert_after_done(keyed=True)
