"""PostgreSQL: a worker's outcome transaction writes its execution, kept states and log
entries at commit in one statement (:mod:`orchestrion.engine.runtime.folded`); the rows
are those the separate statements wrote. SQLite keeps the separate statements."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from orchestrion.engine import Engine, StepTypeRegistry, Worker
from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType
from orchestrion.engine.runtime.folded import write_folded
from orchestrion.engine.steps import MODULES
from orchestrion.kernel.db.engine import Database
from tests.engine.helpers import start, until_finished


class Flaky(StepType):
    """Fails its first attempt (retryable, with details), succeeds the next."""

    name = "flaky"

    async def run(self, call: StepCall) -> Outcome:
        if call.attempt == 1:
            return Failed("not yet", details={"why": ["busy", None]})
        return Succeeded({"attempt": call.attempt})


class Nothing(StepType):
    """Succeeds with no output (``None``: JSON null in the state)."""

    name = "nothing"

    async def run(self, call: StepCall) -> Outcome:
        return Succeeded(None)


def _queued(step_id: str, kind: str, needs: str | None, **extra: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"id": step_id, "type": kind, "timeout": 30, **extra}
    if needs:
        step["needs"] = [needs]
    return step


WORKFLOWS = [
    {
        "name": "succeeds",
        "steps": [
            _queued("a", "transform", None, **{"with": {"v": [1, {"x": None}]}}),
            _queued("b", "flaky", "a", retry={"max_attempts": 2, "delay": 0.01}),
            _queued("c", "nothing", "b"),
            _queued("d", "transform", "c", for_each="{{ [1, 2, 3] }}", concurrency=1),
            _queued("e", "transform", "d", **{"with": {"from": "{{ steps.d.output }}"}}),
        ],
        "outputs": {"e": "{{ steps.e.output }}"},
    },
    {
        "name": "fails",
        "steps": [
            _queued("a", "nothing", None),
            _queued("b", "fail", "a", **{"with": {"message": "stop"}}),
            _queued("c", "transform", "b", **{"with": {}}),
        ],
    },
]

_STATES = """
SELECT step_id, status, attempts, output, error, items, launched, completed_seq,
       output IS NULL, error IS NULL, items IS NULL, started_at IS NULL, finished_at IS NULL
FROM wf_step_states WHERE execution_id = :id ORDER BY step_id
"""
_EVENTS = (
    "SELECT seq, type, step_id, data FROM wf_execution_events WHERE execution_id = :id ORDER BY seq"
)
_EXECUTION = """
SELECT status, outputs, error, usage, last_seq, states_version, outputs IS NULL, error IS NULL,
       finished_at IS NULL,
       updated_at = (SELECT max(at) FROM wf_execution_events WHERE execution_id = :id)
FROM wf_executions WHERE id = :id
"""
_TASKS = "SELECT count(*) FROM kernel_tasks WHERE group_key = :id"


async def _run(database_url: str) -> tuple[list[Any], Counter[str]]:
    """Each workflow's rows once it ended (and its tasks left), and how many statements
    of each kind ran: ``folded``; those that carried completed tasks' ``DELETE``, the
    folded one (``folded+done``) or a task's ``INSERT`` (``insert+done``)."""
    registry = StepTypeRegistry(MODULES)
    registry.register(Flaky)
    registry.register(Nothing)
    engine = Engine(Database(database_url), registry=registry)
    seen: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        done = "done AS (DELETE FROM kernel_tasks" in " ".join(statement.split())
        if statement.startswith("WITH events AS"):
            seen["folded"] += 1
            seen["folded+done"] += done
        elif done:
            seen["insert+done"] += "INSERT INTO kernel_tasks" in statement

    event.listen(engine.database.engine.sync_engine, "before_cursor_execute", count)
    worker = Worker(engine, concurrency=4, poll_seconds=0.2)
    running = asyncio.create_task(worker.run())
    found: list[Any] = []
    try:
        for definition in WORKFLOWS:
            execution_id = await start(engine, definition, workflow_id=str(definition["name"]))
            await until_finished(engine, execution_id)
            async with engine.database.session() as session:
                for query in (_STATES, _EVENTS, _EXECUTION, _TASKS):
                    rows = await session.execute(text(query), {"id": execution_id})
                    found.append([tuple(row) for row in rows])
    finally:
        worker.stop()
        await running
        await engine.queue.close()
        await engine.database.dispose()
    return found, seen


async def test_the_folded_statement_writes_what_the_separate_ones_did(database_url: str) -> None:
    folded_rows, seen = await _run(database_url)
    event.remove(Session, "before_commit", write_folded)
    try:
        separate_rows, separate = await _run(database_url)
    finally:
        event.listen(Session, "before_commit", write_folded, insert=True)
    assert separate["folded"] == 0
    assert folded_rows == separate_rows
    succeeded, failed = folded_rows[2], folded_rows[6]
    assert folded_rows[3] == folded_rows[7] == [(0,)]  # every task completed
    assert succeeded[0][0] == "succeeded"
    assert failed[0][0] == "failed"
    assert all(row[-1] for row in (succeeded[0], failed[0]))  # updated_at is the last entry's
    if database_url.startswith("postgresql"):
        # Every outcome transaction (a step, a retry, an iteration) wrote in one statement.
        assert seen["folded"] >= 10
        # Its task's DELETE went with the next task's INSERT, or with that statement
        # when there was no next task (the end of the fails workflow).
        assert seen["insert+done"] >= 5
        assert seen["folded+done"] >= 1
    else:
        assert seen == {}
