"""A durable task queue in the database: leases, heartbeats and wake-ups.

Enqueueing happens in the caller's transaction, so work and the tasks it implies commit
together or not at all (never "enqueue, then commit"). Workers claim due tasks with a
lease; a worker that dies stops renewing, its lease expires and another worker claims
the task again. Completing a task deletes it, again in the caller's transaction.

PostgreSQL claims with ``FOR UPDATE SKIP LOCKED`` so workers never block each other
(one statement: :mod:`.statements`), and wakes idle workers with ``NOTIFY`` sent at
commit; a completion's ``DELETE`` goes with the transaction's next statement on the
table or at commit (:mod:`.completions`). SQLite serialises writers
(``BEGIN IMMEDIATE``) and wakes workers of the same process with an in-memory event.

A task handed out ``max_attempts`` times without being completed (one that crashes or
hangs its worker every time) is not handed out again: the claim that would exceed the
cap moves it to the dead-letter queue ``<queue>.dead`` instead (same table, never
claimed), where :meth:`TaskQueue.dead_letters` lists it. Its key stays taken, so the
same work enqueued again is still ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, bindparam, delete, event, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.db.engine import Database, is_sqlite
from orchestrion.kernel.ids import new_id, utcnow
from orchestrion.kernel.observability import tracing
from orchestrion.kernel.queue import completions, metrics, statements
from orchestrion.kernel.queue.models import Task

logger = logging.getLogger("orchestrion.queue")
NOTIFY_CHANNEL = "orchestrion_tasks"
#: The dead-letter queue of ``queue`` is ``queue + DEAD_SUFFIX``.
DEAD_SUFFIX = ".dead"
#: ``run_at`` of parked tasks (a paused execution's): far enough never to come.
PARKED = datetime(9999, 1, 1, tzinfo=UTC)
#: What a task's ``INSERT`` binds for the columns a call leaves out.
_UNSET: dict[str, Any] = dict.fromkeys(statements.COLUMNS)


@dataclass(frozen=True)
class ClaimedTask:
    """A task leased to this worker until ``lease_expires_at``."""

    id: str
    queue: str
    key: str | None
    payload: dict[str, Any]
    attempts: int
    lease_expires_at: datetime
    #: The trace context it was enqueued under (W3C traceparent), if tracing was on.
    traceparent: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A task given up on after ``attempts`` deliveries, at ``died_at``."""

    id: str
    queue: str
    key: str | None
    payload: dict[str, Any]
    attempts: int
    died_at: datetime


class TaskQueue:
    """Enqueue, claim, renew and complete tasks of named queues on one database.

    ``max_attempts`` caps how many times one task is handed out (see the module's
    docstring); ``on_dead`` is called with the tasks a claim dead-lettered, after it
    committed (the engine fails the steps they were running).
    """

    def __init__(
        self,
        database: Database,
        *,
        lease: timedelta = timedelta(seconds=30),
        max_attempts: int = 25,
        on_dead: Callable[[list[DeadLetter]], Awaitable[None]] | None = None,
    ) -> None:
        self.database = database
        self.lease = lease
        self.max_attempts = max_attempts
        self.on_dead = on_dead
        self.postgres = not is_sqlite(database.url)
        self._wakeups: dict[str, asyncio.Event] = {}
        self._due: dict[str, datetime] = {}
        self._listener: Any = None
        self._sampled: set[str] = set()
        # Hot statements built once, with bind parameters: building and hashing a
        # statement per call cost more CPU than the database spent running it.
        table = cast(Table, Task.__table__)
        insert = (postgresql if self.postgres else sqlite).insert(table)
        self._insert = insert
        self._insert_keyed = insert.on_conflict_do_nothing(index_elements=["key"])
        self._complete_many = delete(table).where(
            table.c.id.in_(bindparam("ids", expanding=True)),
            table.c.lease_owner == bindparam("owner"),
        )

    # --- producing ------------------------------------------------------------------

    async def enqueue(
        self,
        session: AsyncSession,
        *,
        queue: str,
        payload: dict[str, Any],
        key: str | None = None,
        run_at: datetime | None = None,
        priority: int = 0,
        leased_to: str | None = None,
        group: str | None = None,
        kind: str | None = None,
        subject: str | None = None,
        traceparent: str | None = None,
    ) -> ClaimedTask | None:
        """Add a task in the caller's transaction; a duplicate ``key`` is ignored (None).

        ``group``, ``kind`` and ``subject`` label it for :meth:`drop` and :meth:`park`.
        With tracing on, the task stores the context of an ``enqueue`` span, a child of
        the current span (or of ``traceparent`` when none is current).

        ``leased_to`` enqueues it already claimed by that worker, which runs it right
        after the commit without a claim of its own (a worker continuing a chain);
        if it dies first, the lease expires and anyone may claim the task.
        """
        due = run_at or utcnow()
        task_id = new_id()
        # The span covers the INSERT; off, it records nothing and stores no context.
        with tracing.span(
            f"enqueue {queue}",
            kind=tracing.SpanKind.PRODUCER,
            parent=traceparent,
            attributes=_enqueue_attributes(queue, task_id, kind),
        ) as enqueued:
            traceparent = tracing.traceparent(enqueued)
            values: dict[str, Any] = {
                "id": task_id,
                "queue": queue,
                "key": key,
                "group_key": group,
                "kind": kind,
                "subject": subject,
                "payload": payload,
                "priority": priority,
                "run_at": due,
                "attempts": 0,
                "created_at": utcnow(),
                "traceparent": traceparent,
            }
            expires = utcnow() + self.lease
            if leased_to is not None:
                values.update(lease_owner=leased_to, lease_expires_at=expires, attempts=1)
            done = completions.take(session) if self.postgres else None
            if done is None:
                stmt = self._insert if key is None else self._insert_keyed
                result = await session.execute(stmt, values)
            else:  # with the completed tasks' DELETE that complete_many held
                keyed = key is not None
                stmt = statements.INSERT_AFTER_DONE_KEYED if keyed else statements.INSERT_AFTER_DONE
                result = await session.execute(stmt, {**_UNSET, **values, **done})
            if not getattr(result, "rowcount", 1):
                return None
            if leased_to is not None:
                return ClaimedTask(
                    id=task_id,
                    queue=queue,
                    key=key,
                    payload=payload,
                    attempts=1,
                    lease_expires_at=expires,
                    traceparent=traceparent,
                )
            if due > utcnow():
                self._note_due(queue, due)
            if self._wake_after_commit(session, queue) and self.postgres:
                # Delivered by PostgreSQL at commit, to every listening worker process.
                await session.execute(select(_pg_notify(queue)))
            return None

    # --- groups ----------------------------------------------------------------------

    @staticmethod
    def _in_group(group: str, kind: str | None, subject: str | None) -> list[Any]:
        where: list[Any] = [Task.group_key == group]
        if kind is not None:
            where.append(Task.kind == kind)
        if subject is not None:
            where.append(Task.subject == subject)
        return where

    async def drop(
        self,
        session: AsyncSession,
        *,
        group: str,
        kind: str | None = None,
        subject: str | None = None,
        only_unleased: bool = False,
    ) -> None:
        """Delete a group's tasks (of one kind, one subject), in the caller's transaction."""
        await completions.send(session)
        stmt = delete(Task).where(*self._in_group(group, kind, subject))
        if only_unleased:
            stmt = stmt.where(Task.lease_owner.is_(None))
        await session.execute(stmt)

    async def delete_key(self, session: AsyncSession, key: str) -> None:
        """Delete the task enqueued under ``key``, if it is still there."""
        await completions.send(session)
        await session.execute(delete(Task).where(Task.key == key))

    async def park(
        self, session: AsyncSession, *, group: str, kind: str | None = None, parked: bool
    ) -> None:
        """Park a group's waiting tasks (they never fall due), or release them to run now."""
        await completions.send(session)
        await session.execute(
            update(Task)
            .where(
                *self._in_group(group, kind, None),
                Task.lease_owner.is_(None),
                (Task.run_at < PARKED) if parked else (Task.run_at >= PARKED),
            )
            .values(run_at=PARKED if parked else utcnow())
        )

    def _wake_after_commit(self, session: AsyncSession, queue: str) -> bool:
        """Wake local workers at commit; True the first time ``queue`` is seen in it."""
        pending: set[str] = session.info.setdefault("orchestrion.wake", set())
        if not pending:
            event.listen(session.sync_session, "after_commit", self._on_commit, once=True)
        first = queue not in pending
        pending.add(queue)
        return first

    def _note_due(self, queue: str, due: datetime) -> None:
        current = self._due.get(queue)
        if current is None or due < current:
            self._due[queue] = due

    def next_local_due(self, queue: str) -> datetime | None:
        """The earliest future task this process enqueued on ``queue`` (timers, retries)."""
        due = self._due.get(queue)
        if due is not None and due <= utcnow():
            self._due.pop(queue, None)
        return due

    def _on_commit(self, sync_session: Any) -> None:
        for queue in sync_session.info.pop("orchestrion.wake", set()):
            self.wake(queue)

    def wake(self, queue: str) -> None:
        """Wake this process's workers waiting on ``queue``."""
        self._event(queue).set()

    def _event(self, queue: str) -> asyncio.Event:
        found = self._wakeups.get(queue)
        if found is None:
            found = self._wakeups[queue] = asyncio.Event()
        return found

    # --- consuming ------------------------------------------------------------------

    async def claim(self, *, queue: str, owner: str, limit: int = 1) -> list[ClaimedTask]:
        """Lease up to ``limit`` due tasks (highest priority, then oldest) to ``owner``.

        Tasks already handed out ``max_attempts`` times are dead-lettered instead.
        """
        claimed: list[ClaimedTask] = []
        dead: list[DeadLetter] = []
        while len(claimed) < limit:
            got, died = await self._claim(queue=queue, owner=owner, limit=limit - len(claimed))
            claimed += got
            dead += died
            if not died:
                break  # else the dead took places of due tasks: look again
        if dead:
            metrics.DEAD_LETTERED.labels(queue).inc(len(dead))
            for letter in dead:
                logger.error(
                    "task %s (%s) on %s dead-lettered after %d attempts (max_task_attempts)",
                    letter.id,
                    letter.key,
                    queue,
                    letter.attempts,
                )
            if self.on_dead is not None:
                try:
                    await self.on_dead(dead)
                except Exception:
                    logger.exception("handling %d dead-lettered tasks failed", len(dead))
        return claimed

    async def _claim(
        self, *, queue: str, owner: str, limit: int
    ) -> tuple[list[ClaimedTask], list[DeadLetter]]:
        now = utcnow()
        if self.postgres:
            return await self._claim_in_one(queue=queue, owner=owner, limit=limit, now=now)
        expires = now + self.lease
        due = (
            select(Task.id)
            .where(
                Task.queue == queue,
                Task.run_at <= now,
                or_(Task.lease_expires_at.is_(None), Task.lease_expires_at < now),
            )
            .order_by(Task.priority.desc(), Task.run_at)
            .limit(limit)
        )
        # SQLite: at most ``limit`` tasks, so its statements may run on the loop's thread.
        async with self.database.session(on_loop=True) as session:
            ids = list((await session.execute(due)).scalars())
            if not ids:
                return [], []
            spent = Task.attempts >= self.max_attempts
            await session.execute(
                update(Task)
                .where(Task.id.in_(ids), spent)
                .values(
                    queue=queue + DEAD_SUFFIX,
                    lease_owner=None,
                    lease_expires_at=None,
                    run_at=now,
                    # Out of its group: cancelling or pausing the work keeps the record.
                    group_key=None,
                )
            )
            await session.execute(
                update(Task)
                .where(Task.id.in_(ids), ~spent)
                .values(lease_owner=owner, lease_expires_at=expires, attempts=Task.attempts + 1)
            )
            rows = list((await session.execute(select(Task).where(Task.id.in_(ids)))).scalars())
            return _claimed(rows, queue=queue, now=now, expires=expires)

    async def _claim_in_one(
        self, *, queue: str, owner: str, limit: int, now: datetime
    ) -> tuple[list[ClaimedTask], list[DeadLetter]]:
        """PostgreSQL: the claim above in one statement (:data:`.statements.CLAIM`)."""
        expires = now + self.lease
        params = {
            "queue": queue,
            "now": now,
            "limit": limit,
            "max_attempts": self.max_attempts,
            "dead_queue": queue + DEAD_SUFFIX,
            "owner": owner,
            "expires": expires,
        }
        async with self.database.session() as session:
            rows = list((await session.execute(statements.CLAIM, params)).all())
        # By id, as SQLite's claim reads them back (the statement's come in no set order).
        rows.sort(key=lambda row: row.id)
        return _claimed(rows, queue=queue, now=now, expires=expires)

    async def renew(self, *, owner: str, task_ids: Sequence[str]) -> set[str]:
        """Extend the leases ``owner`` still holds; returns the ids it still holds."""
        if not task_ids:
            return set()
        async with self.database.session() as session:
            await session.execute(
                update(Task)
                .where(Task.id.in_(task_ids), Task.lease_owner == owner)
                .values(lease_expires_at=utcnow() + self.lease)
            )
            held = await session.execute(
                select(Task.id).where(Task.id.in_(task_ids), Task.lease_owner == owner)
            )
            return set(held.scalars())

    async def complete(self, session: AsyncSession, *, task_id: str, owner: str) -> bool:
        """Delete a finished task in the caller's transaction; False if the lease was lost."""
        await completions.send(session)
        result = await session.execute(
            delete(Task).where(Task.id == task_id, Task.lease_owner == owner)
        )
        return bool(getattr(result, "rowcount", 0))

    async def complete_many(
        self, session: AsyncSession, *, task_ids: Sequence[str], owner: str
    ) -> None:
        """Delete finished tasks in one statement, in the caller's transaction (those
        whose lease was lost are left to their new owner).

        On PostgreSQL the ``DELETE`` goes with the transaction's next statement on the
        task table, or at its commit (see :mod:`.completions`)."""
        if not task_ids:
            return
        if self.postgres and completions.hold(session, list(task_ids), owner):
            return
        await completions.send(session)
        await session.execute(self._complete_many, {"ids": list(task_ids), "owner": owner})

    async def release(
        self, session: AsyncSession, *, task_id: str, owner: str, run_at: datetime
    ) -> None:
        """Give a task back, to be claimed again from ``run_at`` (in the caller's transaction)."""
        await completions.send(session)
        await session.execute(
            update(Task)
            .where(Task.id == task_id, Task.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None, run_at=run_at)
        )

    async def wait(self, *, queue: str, seconds: float) -> None:
        """Sleep until a task is enqueued on ``queue`` (here or, on PostgreSQL, anywhere)."""
        wakeup = self._event(queue)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), seconds)
        wakeup.clear()

    async def dead_letters(self, *, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The tasks of ``queue`` given up on, oldest first."""
        async with self.database.session() as session:
            rows = await session.execute(
                select(Task)
                .where(Task.queue == queue + DEAD_SUFFIX)
                .order_by(Task.run_at, Task.id)
                .limit(limit)
            )
            return [_dead_letter(row, queue) for row in rows.scalars()]

    async def discard_dead(self, *, queue: str, task_ids: Sequence[str]) -> int:
        """Delete dead letters of ``queue`` (once looked into); how many were deleted."""
        async with self.database.session() as session:
            result = await session.execute(
                delete(Task).where(Task.queue == queue + DEAD_SUFFIX, Task.id.in_(task_ids))
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def depth(self) -> dict[str, int]:
        """Tasks due now and not leased, by queue (dead-letter queues included)."""
        now = utcnow()
        stmt = (
            select(Task.queue, func.count())
            .where(
                Task.run_at <= now,
                or_(Task.lease_expires_at.is_(None), Task.lease_expires_at < now),
            )
            .group_by(Task.queue)
        )
        async with self.database.session() as session:
            return {name: int(n) for name, n in (await session.execute(stmt)).all()}

    async def sample_depth(self, queues: Sequence[str] = ()) -> None:
        """Set the ``orchestrion_queue_depth`` gauge from the table (``queues``, and their
        dead letters, read 0 when they hold nothing due)."""
        found = await self.depth()
        for name in queues:
            found.setdefault(name, 0)
            found.setdefault(name + DEAD_SUFFIX, 0)
        for name, count in found.items():
            metrics.DEPTH.labels(name).set(count)
        for name in self._sampled - found.keys():
            metrics.DEPTH.labels(name).set(0)
        self._sampled |= found.keys()

    async def count(self, *, queue: str) -> int:
        """How many tasks ``queue`` holds (due or not)."""
        async with self.database.session() as session:
            stmt = select(func.count()).select_from(Task).where(Task.queue == queue)
            return int((await session.execute(stmt)).scalar_one())

    # --- PostgreSQL wake-ups ---------------------------------------------------------

    async def listen(self) -> None:
        """On PostgreSQL, wake this process's workers on every other process's enqueue."""
        if not self.postgres or self._listener is not None:
            return
        import asyncpg

        url = make_url(self.database.url).set(drivername="postgresql")
        connection = await asyncpg.connect(url.render_as_string(hide_password=False))

        def on_notify(_connection: Any, _pid: int, _channel: str, queue: str) -> None:
            self.wake(queue)

        await connection.add_listener(NOTIFY_CHANNEL, on_notify)
        self._listener = connection

    async def close(self) -> None:
        """Stop listening for wake-ups."""
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None


@contextlib.contextmanager
def task_span(task: ClaimedTask, queue: str) -> Iterator[Any]:
    """The CONSUMER span of a claimed task, continuing the trace it was enqueued in.

    The task's ``execution_id`` and ``step_id`` (when the payload has them) are bound
    into the logs while it runs.
    """
    payload = task.payload
    labels = {
        name: str(payload[name])
        for name in ("execution_id", "step_id")
        if payload.get(name) is not None
    }
    tokens = structlog.contextvars.bind_contextvars(**labels) if labels else None
    try:
        with tracing.span(
            f"process {queue}",
            kind=tracing.SpanKind.CONSUMER,
            parent=task.traceparent,
            attributes=_task_attributes(task, queue, labels.get("execution_id")),
        ) as current:
            yield current
    finally:
        if tokens:
            structlog.contextvars.reset_contextvars(**tokens)


def _task_attributes(task: ClaimedTask, queue: str, execution_id: str | None) -> Any:
    if not tracing.enabled():
        return None
    return {
        "messaging.system": "orchestrion.tasks",
        "messaging.destination.name": queue,
        "messaging.message.id": task.id,
        "messaging.operation.type": "process",
        "orchestrion.task.kind": task.payload.get("kind"),
        "orchestrion.task.attempts": task.attempts,
        "orchestrion.execution_id": execution_id,
    }


def _enqueue_attributes(queue: str, task_id: str, kind: str | None) -> dict[str, Any] | None:
    if not tracing.enabled():
        return None
    return {
        "messaging.system": "orchestrion.tasks",
        "messaging.destination.name": queue,
        "messaging.message.id": task_id,
        "orchestrion.task.kind": kind,
    }


def _claimed(
    rows: Sequence[Any], *, queue: str, now: datetime, expires: datetime
) -> tuple[list[ClaimedTask], list[DeadLetter]]:
    """A claim's rows (tasks or returned rows), as it leased or dead-lettered them."""
    for row in rows:
        if row.queue == queue and row.attempts == 1:
            waited = (now - _aware(row.run_at)).total_seconds()
            metrics.CLAIM_LATENCY.labels(queue).observe(max(0.0, waited))
    claimed = [
        ClaimedTask(
            id=row.id,
            queue=row.queue,
            key=row.key,
            payload=row.payload,
            attempts=row.attempts,
            lease_expires_at=expires,
            traceparent=row.traceparent,
        )
        for row in rows
        if row.queue == queue
    ]
    dead = [_dead_letter(row, queue) for row in rows if row.queue != queue]
    return claimed, dead


def _dead_letter(row: Any, queue: str) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        queue=queue,
        key=row.key,
        payload=row.payload,
        attempts=row.attempts,
        died_at=row.run_at,
    )


def _pg_notify(queue: str) -> Any:
    return func.pg_notify(NOTIFY_CHANNEL, queue)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
