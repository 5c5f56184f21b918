"""The log's entries go in by one prebuilt ``INSERT`` when the session flushes (see
``engine/runtime/log.py``): in order, once, seen by a query in the same transaction,
and gone with a rollback. Steps are found by id in their parsed definition."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select

from orchestrion.engine import Engine, ExecutionEvent
from orchestrion.engine.definition import WorkflowDefinition
from orchestrion.engine.events import StepSkipped
from orchestrion.engine.runtime.core import steps_by_id
from orchestrion.engine.runtime.transition import Transition
from orchestrion.kernel.db.engine import Database
from tests.engine.helpers import start

PAUSED = {
    "name": "one",
    "steps": [{"id": "a", "type": "transform", "with": {"v": 1}, "timeout": 30}],
}


async def _log(engine: Engine, execution_id: str) -> list[tuple[int, str, str | None]]:
    async with engine.database.session() as session:
        rows = await session.execute(
            select(ExecutionEvent)
            .where(ExecutionEvent.execution_id == execution_id)
            .order_by(ExecutionEvent.seq)
        )
        return [(e.seq, e.type, e.step_id) for e in rows.scalars()]


async def test_entries_are_written_in_one_statement_and_seen_within_the_transaction(
    database_url: str,
) -> None:
    engine = Engine(Database(database_url))
    inserts: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO WF_EXECUTION_EVENTS"):
            inserts.append(statement)

    try:
        execution_id = await start(engine, PAUSED)
        before = await _log(engine, execution_id)
        event.listen(engine.database.engine.sync_engine, "before_cursor_execute", count)
        async with engine.database.session() as session:
            transition = await Transition.open(engine.parts, session, execution_id)
            assert transition is not None
            first = transition.emit(StepSkipped(step_id="x"))
            second = transition.emit(StepSkipped(step_id="y"))
            # A query of the log in the same transaction flushes them first.
            seen = await session.execute(
                select(ExecutionEvent.seq).where(
                    ExecutionEvent.execution_id == execution_id, ExecutionEvent.seq >= first
                )
            )
            assert sorted(seen.scalars()) == [first, second]
            transition.emit(StepSkipped(step_id="z"))
        # Two flushes with entries to write (the query's, the commit's): two statements.
        assert len(inserts) == 2
        after = await _log(engine, execution_id)
        assert after[: len(before)] == before
        assert after[len(before) :] == [
            (first, "step.skipped", "x"),
            (second, "step.skipped", "y"),
            (second + 1, "step.skipped", "z"),
        ]
        assert [seq for seq, _, _ in after] == list(range(1, len(after) + 1))
    finally:
        await engine.database.dispose()


async def test_a_rolled_back_transaction_leaves_no_entries(database_url: str) -> None:
    engine = Engine(Database(database_url))
    try:
        execution_id = await start(engine, PAUSED)
        before = await _log(engine, execution_id)

        async def failing() -> None:
            async with engine.database.session() as session:
                transition = await Transition.open(engine.parts, session, execution_id)
                assert transition is not None
                transition.emit(StepSkipped(step_id="never"))
                await session.flush()
                transition.emit(StepSkipped(step_id="nor-this"))
                raise RuntimeError("the transaction fails")

        with pytest.raises(RuntimeError):
            await failing()
        assert await _log(engine, execution_id) == before
    finally:
        await engine.database.dispose()


def test_steps_are_found_by_id_in_their_definition() -> None:
    definition = WorkflowDefinition.model_validate(
        {
            "name": "two",
            "steps": [
                {"id": "a", "type": "transform", "with": {}},
                {"id": "b", "type": "transform", "needs": ["a"], "with": {}},
            ],
        }
    )
    index = steps_by_id(definition)
    assert index["b"] is definition.steps[1]
    assert steps_by_id(definition) is index  # built once
    with pytest.raises(KeyError):
        index["c"]
    # Another parsed copy has its own index, of its own objects.
    copy = WorkflowDefinition.model_validate(definition.model_dump(by_alias=True))
    assert steps_by_id(copy)["a"] is copy.steps[0]
