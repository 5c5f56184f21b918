"""The worker's transactions load the execution without its definition (the largest
column) while this process has the parsed definition cached; without it, read once."""

from __future__ import annotations

from sqlalchemy.orm.base import instance_state

from orchestrion.engine import Engine
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


async def test_the_definition_is_read_only_when_not_cached(database_url: str) -> None:
    engine, fresh = Engine(Database(database_url)), Engine(Database(database_url))
    try:
        execution_id = await start(engine, CHAIN)  # parsed and cached by its start
        async with engine.database.session() as session:
            transition = await Transition.open(engine.parts, session, execution_id, kept=True)
            assert transition is not None
            assert "definition" in instance_state(transition.execution).unloaded
            assert transition.definition is engine.parts.cached_definition(transition.execution)
            assert [step.id for step in transition.definition.steps] == ["a", "b"]

        # Another process (nothing cached): the definition is read, parsed and cached.
        async with fresh.database.session() as session:
            transition = await Transition.open(fresh.parts, session, execution_id, kept=True)
            assert transition is not None
            assert "definition" not in instance_state(transition.execution).unloaded
            assert transition.execution.definition["steps"][1]["id"] == "b"
            assert [step.id for step in transition.definition.steps] == ["a", "b"]
            assert fresh.parts.cached_definition(transition.execution) is transition.definition

        # Any other transaction loads the whole row, as before.
        async with engine.database.session() as session:
            transition = await Transition.open(engine.parts, session, execution_id)
            assert transition is not None
            assert "definition" not in instance_state(transition.execution).unloaded
    finally:
        await engine.database.dispose()
        await fresh.database.dispose()
