"""Step states kept between an execution's transactions are reused only while no other
transaction changed them (``states_version``), and never after a rollback."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select

from orchestrion.engine import Engine, Execution
from orchestrion.engine.models import StepState
from orchestrion.engine.runtime.transition import Transition
from orchestrion.kernel.db.engine import Database
from tests.engine.helpers import start

CHAIN = {
    "name": "chain",
    "steps": [
        {"id": "a", "type": "transform", "with": {"v": 1}, "timeout": 30},
        {"id": "b", "type": "transform", "needs": ["a"], "with": {"v": 2}, "timeout": 30},
    ],
}


async def _version(engine: Engine, execution_id: str) -> int:
    async with engine.database.session() as session:
        stmt = select(Execution.states_version).where(Execution.id == execution_id)
        return int((await session.execute(stmt)).scalar_one())


async def _open_kept(engine: Engine, execution_id: str) -> dict[str, Any]:
    """The states a worker's transaction sees, as plain values."""
    async with engine.database.session() as session:
        transition = await Transition.open(engine.parts, session, execution_id, kept=True)
        assert transition is not None
        return {k: (s.status, s.output) for k, s in transition.states.items()}


async def test_kept_states_are_reused_until_another_transaction_changes_them(
    database_url: str,
) -> None:
    mine, other = Engine(Database(database_url)), Engine(Database(database_url))
    try:
        execution_id = await start(mine, CHAIN)
        first = await _open_kept(mine, execution_id)
        kept = mine.parts.tracker.states._entries[execution_id][1]["a"]

        # Unchanged: the same objects come back, with no query for them.
        async with mine.database.session() as session:
            transition = await Transition.open(mine.parts, session, execution_id, kept=True)
            assert transition is not None
            assert transition.states["a"] is kept

        # Another engine (another process) changes a state: the version moves...
        before = await _version(mine, execution_id)
        async with other.database.session() as session:
            row = (
                await session.execute(
                    select(StepState).where(
                        StepState.execution_id == execution_id, StepState.step_id == "a"
                    )
                )
            ).scalar_one()
            row.output = {"changed": "elsewhere"}
        assert await _version(mine, execution_id) > before

        # ...and this engine's next transaction reads the change, not its copy.
        again = await _open_kept(mine, execution_id)
        assert again["a"] == (first["a"][0], {"changed": "elsewhere"})
    finally:
        await mine.database.dispose()
        await other.database.dispose()


async def test_a_rolled_back_change_is_not_kept(database_url: str) -> None:
    engine = Engine(Database(database_url))
    try:
        execution_id = await start(engine, CHAIN)
        await _open_kept(engine, execution_id)

        async def failing() -> None:
            async with engine.database.session() as session:
                transition = await Transition.open(engine.parts, session, execution_id, kept=True)
                assert transition is not None
                transition.states["b"].output = {"never": "committed"}
                await session.flush()
                raise RuntimeError("the transaction fails")

        with pytest.raises(RuntimeError):
            await failing()
        assert (await _open_kept(engine, execution_id))["b"][1] is None
    finally:
        await engine.database.dispose()


async def test_a_committed_change_is_kept_with_its_version(database_url: str) -> None:
    engine = Engine(Database(database_url))
    try:
        execution_id = await start(engine, CHAIN)
        await _open_kept(engine, execution_id)
        before = await _version(engine, execution_id)
        async with engine.database.session() as session:
            transition = await Transition.open(engine.parts, session, execution_id, kept=True)
            assert transition is not None
            transition.states["b"].output = {"kept": True}
        assert await _version(engine, execution_id) == before + 1
        version, states = engine.parts.tracker.states._entries[execution_id]
        assert version == before + 1
        assert states["b"].output == {"kept": True}
        # Read back from the database by a fresh engine: the change was written.
        fresh = Engine(Database(database_url))
        try:
            assert (await _open_kept(fresh, execution_id))["b"][1] == {"kept": True}
        finally:
            await fresh.database.dispose()
    finally:
        await engine.database.dispose()


async def test_kept_states_changed_differently_are_written_in_one_statement(
    database_url: str,
) -> None:
    engine = Engine(Database(database_url))
    updates: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # On PostgreSQL, in the statement that writes the transaction (see ``folded``).
        if "UPDATE WF_STEP_STATES" in statement.upper():
            updates.append(statement)

    try:
        execution_id = await start(engine, CHAIN)
        await _open_kept(engine, execution_id)
        event.listen(engine.database.engine.sync_engine, "before_cursor_execute", count)
        async with engine.database.session() as session:
            transition = await Transition.open(engine.parts, session, execution_id, kept=True)
            assert transition is not None
            transition.states["a"].status = "succeeded"
            transition.states["a"].output = {"from": "a"}
            transition.states["b"].attempts = 3
        assert len(updates) == 1
        # Read back by a fresh engine: each state has its own change, and only that.
        fresh = Engine(Database(database_url))
        try:
            async with fresh.database.session() as session:
                rows = await session.execute(
                    select(StepState).where(StepState.execution_id == execution_id)
                )
                written = {s.step_id: (s.status, s.output, s.attempts) for s in rows.scalars()}
        finally:
            await fresh.database.dispose()
        assert written == {"a": ("succeeded", {"from": "a"}, 0), "b": ("pending", None, 3)}
        # Nothing left to write: the next transaction on the same states writes none.
        async with engine.database.session() as session:
            transition = await Transition.open(engine.parts, session, execution_id, kept=True)
            assert transition is not None
            assert transition.states["a"].output == {"from": "a"}
        assert len(updates) == 1
    finally:
        await engine.database.dispose()
