"""Queued steps: outcomes that end together share one transaction, each applied as if
alone, and a chain continued by its worker needs no claim per step."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from orchestrion.engine import Engine, Execution, ExecutionEvent, Worker
from orchestrion.engine.models import StepState
from orchestrion.engine.outcomes import Succeeded
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.queue.models import Task
from tests.engine.helpers import start, until_finished
from tests.fixtures.databases import copy_template

BRANCHES = 4


def _fan_out() -> dict[str, Any]:
    branches = [
        {"id": f"b{i}", "type": "transform", "with": {"i": i}, "timeout": 30}
        for i in range(BRANCHES)
    ]
    join = {"id": "join", "type": "transform", "needs": [b["id"] for b in branches], "with": {}}
    return {"name": "fan", "steps": [*branches, join]}


class _Commits:
    """The commits on ``engine``'s database while the block runs, but those of the
    connection ``ignored``."""

    def __init__(self, engine: Engine) -> None:
        self.target = engine.database.engine.sync_engine
        self.count = 0
        self.ignored: Any = None

    def _seen(self, connection: Any) -> None:
        if connection is not self.ignored:
            self.count += 1

    def __enter__(self) -> _Commits:
        event.listen(self.target, "commit", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.target, "commit", self._seen)


async def test_outcomes_ending_together_share_one_transaction(database_url: str) -> None:
    engine = Engine(Database(database_url))
    try:
        execution_id = await start(engine, _fan_out())
        claimed = await engine.queue.claim(queue=engine.queue_name, owner="w1", limit=10)
        assert len(claimed) == BRANCHES
        started = await engine.start_claimed(claimed, owner="w1")
        prepared = [started[task.id] for task in claimed]
        assert all(p is not None for p in prepared)

        recorder = engine.tasks.recorder
        # While the execution is held (SQLite: the writer lock; PostgreSQL: its row), the
        # first outcome waits for it and the others join its transaction. The first
        # branch's outcome also arrives twice: it must be recorded once.
        with _Commits(engine) as commits:
            async with engine.database.session() as session:
                commits.ignored = (await session.connection()).sync_connection
                await session.execute(
                    select(Execution.id).where(Execution.id == execution_id).with_for_update()
                )
                outcomes = [(p, Succeeded({"n": p.step.id})) for p in prepared if p is not None]
                outcomes.append((outcomes[0][0], Succeeded({"n": "again"})))
                records = [
                    asyncio.create_task(recorder.record(p, "w1", outcome, capacity=0))
                    for p, outcome in outcomes
                ]
                for _ in range(10):
                    await asyncio.sleep(0)
            await asyncio.wait_for(asyncio.gather(*records), 60)
        assert commits.count == 1

        async with engine.database.session() as session:
            execution = await session.get(Execution, execution_id)
            assert execution is not None
            assert execution.status == "succeeded"
            states = (
                await session.execute(
                    select(StepState).where(StepState.execution_id == execution_id)
                )
            ).scalars()
            outputs = {state.step_id: state.output for state in states}
            assert outputs == {
                **{f"b{i}": {"n": f"b{i}"} for i in range(BRANCHES)},
                "join": {},
            }
            rows = await session.execute(
                select(ExecutionEvent.seq, ExecutionEvent.type, ExecutionEvent.step_id)
                .where(ExecutionEvent.execution_id == execution_id)
                .order_by(ExecutionEvent.seq)
            )
            log = list(rows)
            assert [row.seq for row in log] == list(range(1, len(log) + 1))
            succeeded = [row.step_id for row in log if row.type == "step.succeeded"]
            assert sorted(succeeded) == sorted([f"b{i}" for i in range(BRANCHES)] + ["join"])
            left = await session.execute(select(Task.id).where(Task.group_key == execution_id))
            assert list(left) == []
    finally:
        await engine.database.dispose()


async def test_a_chain_needs_no_claim_per_step(database_url: str) -> None:
    steps = 8
    definition = {
        "name": "chain",
        "steps": [
            {"id": f"s{i}", "type": "transform", "with": {"i": i}, "timeout": 30,
             **({"needs": [f"s{i - 1}"]} if i else {})}
            for i in range(steps)
        ],
    }  # fmt: skip
    engine = Engine(Database(database_url))
    claims = 0
    original = engine.queue.claim

    async def counted(**kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return await original(**kwargs)

    engine.queue.claim = counted  # type: ignore[method-assign]
    worker = Worker(engine, concurrency=4, poll_seconds=60)
    running = asyncio.create_task(worker.run())
    try:
        execution = await until_finished(engine, await start(engine, definition))
        assert execution.status == "succeeded"
        # The worker claims the first step; each next one is handed to it by the
        # transaction that records the one before (before: one claim per step).
        assert claims < steps // 2
    finally:
        worker.stop()
        await running
        await engine.queue.close()  # the worker's LISTEN connection (PostgreSQL)
        await engine.database.dispose()


async def test_outcomes_ending_in_the_same_turn_share_one_transaction(database_url: str) -> None:
    """Nothing held: a transaction that never yields (SQLite's whole on the loop) still
    lets the outcomes that ended with the first join it, one turn of the loop later."""
    engine = Engine(Database(database_url))
    try:
        execution_id = await start(engine, _fan_out())
        claimed = await engine.queue.claim(queue=engine.queue_name, owner="w1", limit=10)
        started = await engine.start_claimed(claimed, owner="w1")
        prepared = [p for p in (started[task.id] for task in claimed) if p is not None]
        assert len(prepared) == BRANCHES
        recorder = engine.tasks.recorder
        with _Commits(engine) as commits:
            records = [
                asyncio.create_task(
                    recorder.record(p, "w1", Succeeded({"n": p.step.id}), capacity=0)
                )
                for p in prepared
            ]
            await asyncio.wait_for(asyncio.gather(*records), 60)
        assert commits.count == 1
        async with engine.database.session() as session:
            execution = await session.get(Execution, execution_id)
            assert execution is not None
            assert execution.status == "succeeded"
    finally:
        await engine.database.dispose()


async def test_a_workers_transactions_run_their_statements_on_the_loop_thread(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """SQLite: the worker's transactions (claim, start, record an outcome) run their
    statements on the event loop's thread; those that start and record attempts their
    BEGIN and COMMIT too (the claim's stay on the driver's thread)."""
    url = f"sqlite+aiosqlite:///{copy_template(sqlite_template, tmp_path / 'data')}"
    engine = Engine(Database(url))
    loop_thread = threading.get_ident()
    ran: list[tuple[str, bool]] = []

    @event.listens_for(engine.database.engine.sync_engine, "connect")
    def _trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection._conn.set_trace_callback(
            lambda sql: ran.append((sql, threading.get_ident() == loop_thread))
        )

    definition = {
        "name": "chain",
        "steps": [
            {"id": "a", "type": "transform", "with": {"v": 1}, "timeout": 30},
            {"id": "b", "type": "transform", "needs": ["a"], "with": {"v": 2}, "timeout": 30},
        ],
    }
    worker = Worker(engine, concurrency=4, poll_seconds=60)
    running = asyncio.create_task(worker.run())
    try:
        execution = await until_finished(engine, await start(engine, definition))
        assert execution.status == "succeeded"
    finally:
        worker.stop()
        await running
        await engine.database.dispose()
    results = [on_loop for sql, on_loop in ran if sql.startswith("INSERT INTO wf_step_results")]
    assert results == [True, True]  # both outcomes, recorded on the loop
    claims = [on_loop for sql, on_loop in ran if sql.startswith("UPDATE kernel_tasks SET attempts")]
    assert claims  # at least the first step's
    assert all(claims)
    # Each transaction: its BEGIN, statements and COMMIT, with where each ran.
    transactions: list[list[tuple[str, bool]]] = []
    for sql, on_loop in ran:
        if sql.startswith("PRAGMA"):
            continue  # a BEGIN or COMMIT on the loop sets the busy timeout or checkpoints
        if sql == "BEGIN IMMEDIATE":
            transactions.append([])
        if transactions:
            transactions[-1].append((sql, on_loop))
    recording = [
        t for t in transactions if any(s.startswith("INSERT INTO wf_step_results") for s, _ in t)
    ]
    assert len(recording) == 2
    for transaction in recording:
        assert transaction[0] == ("BEGIN IMMEDIATE", True)
        assert transaction[-1] == ("COMMIT", True)
    claiming = [
        t
        for t in transactions
        if any(s.startswith("UPDATE kernel_tasks SET attempts") for s, _ in t)
    ]
    assert claiming
    for transaction in claiming:
        assert transaction[0] == ("BEGIN IMMEDIATE", False)
        assert transaction[-1] == ("COMMIT", False)
    # The other sessions (this test's, the engine's start) did not ask: none on the loop.
    starts = [
        t for t in transactions if any(s.startswith("INSERT INTO wf_executions") for s, _ in t)
    ]
    assert len(starts) == 1
    assert not [sql for sql, on_loop in starts[0] if on_loop]


async def test_steps_listed_before_what_they_need_still_start(database_url: str) -> None:
    """``advance`` walks the steps again only when one it started is done at once: a
    step listed before its need starts on that next walk (instant needs) or in the
    transaction that records its need (queued ones)."""
    definition = {
        "name": "reversed",
        "steps": [
            {"id": "d", "type": "transform", "needs": ["c"], "with": {"v": "d"}},
            {"id": "c", "type": "transform", "needs": ["b"], "with": {"v": "c"}, "timeout": 30},
            {"id": "b", "type": "transform", "needs": ["a"], "with": {"v": "b"}},
            {"id": "a", "type": "transform", "with": {"v": "a"}},
            {"id": "skipped", "type": "transform", "when": "false", "with": {}},
            {"id": "after_skip", "type": "transform", "needs": ["skipped"], "with": {}},
        ],
    }
    # ``after_skip`` is listed after ``skipped``; put one before it as well.
    definition["steps"].insert(
        0, {"id": "first", "type": "transform", "needs": ["after_skip"], "with": {}}
    )
    engine = Engine(Database(database_url))
    worker = Worker(engine, concurrency=4, poll_seconds=0.2)
    running = asyncio.create_task(worker.run())
    try:
        execution_id = await start(engine, definition)
        execution = await until_finished(engine, execution_id)
        assert execution.status == "succeeded"
        async with engine.database.session() as session:
            rows = await session.execute(
                select(StepState.step_id, StepState.status).where(
                    StepState.execution_id == execution_id
                )
            )
            statuses = dict(rows.all())
        assert statuses == {
            "a": "succeeded",
            "b": "succeeded",
            "c": "succeeded",
            "d": "succeeded",
            "skipped": "skipped",
            "after_skip": "succeeded",
            "first": "succeeded",
        }
    finally:
        worker.stop()
        await running
        await engine.queue.close()
        await engine.database.dispose()
