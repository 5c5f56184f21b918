"""The runtime's limits: fan-out items, child executions and their depth, output
bytes, and results that cannot be stored (failed once, never retried in a loop).

Each test runs a real engine and worker on a migrated database of each backend.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine import (
    TERMINAL,
    Engine,
    EngineLimits,
    Execution,
    ExecutionEvent,
    ModelUsage,
    Outcome,
    StepCall,
    StepState,
    StepType,
    StepTypeRegistry,
    Succeeded,
    Worker,
)
from orchestrion.engine.steps import MODULES
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.queue import TaskQueue

TENANT = "t-limits"


class Counted(StepType):
    """Base of the test step types: counts its runs, by step id."""

    name = "counted"
    runs: ClassVar[dict[str, int]] = {}

    async def run(self, call: StepCall) -> Outcome:
        key = f"{call.execution_id}:{call.step_id}"
        Counted.runs[key] = Counted.runs.get(key, 0) + 1
        return await self.produce(call)

    async def produce(self, call: StepCall) -> Outcome:
        return Succeeded(None)


class Big(Counted):
    """Outputs ``with.bytes`` bytes of text."""

    name = "big"

    async def produce(self, call: StepCall) -> Outcome:
        return Succeeded("x" * int(call.raw_with["bytes"]))


class Unstorable(Counted):
    """Outputs a value JSON cannot hold."""

    name = "unstorable"

    async def produce(self, call: StepCall) -> Outcome:
        return Succeeded({"when": object()})


class Overflowing(Counted):
    """Outputs JSON, but reports usage no integer column can hold: the database refuses it."""

    name = "overflowing"

    async def produce(self, call: StepCall) -> Outcome:
        usage = ModelUsage(
            provider="test", model="m", input_tokens=2**70, output_tokens=0, cost_usd=0.0
        )
        return Succeeded({"ok": True}, usage=(usage,))


def _registry() -> StepTypeRegistry:
    registry = StepTypeRegistry(MODULES)
    for cls in (Big, Unstorable, Overflowing):
        registry.register(cls)
    return registry


class Runner:
    """An engine with these limits, its worker, and the workflows sub_workflow resolves."""

    def __init__(self, database: Database, limits: EngineLimits, **engine: Any) -> None:
        self.workflows: dict[str, dict[str, Any]] = {}

        async def resolve(
            _session: AsyncSession, _tenant: str, workflow_id: str
        ) -> tuple[int, dict[str, Any]] | None:
            found = self.workflows.get(workflow_id)
            return None if found is None else (1, found)

        self.engine = Engine(
            database, registry=_registry(), resolver=resolve, limits=limits, **engine
        )
        self.database = database

    async def start(self, definition: dict[str, Any], inputs: dict[str, Any]) -> str:
        async with self.database.session() as session:
            execution = await self.engine.start(
                session,
                tenant_id=TENANT,
                workflow_id=definition["name"],
                version=1,
                definition=definition,
                inputs=inputs,
                created_by=None,
            )
            return execution.id

    async def finish(self, execution_id: str, *, seconds: float = 20.0) -> Execution:
        """Run a worker until the execution ends (fails the test after ``seconds``)."""
        worker = Worker(self.engine, concurrency=4, poll_seconds=0.1)
        running = asyncio.create_task(worker.run())
        try:
            deadline = time.monotonic() + seconds
            while True:
                async with self.database.session() as session:
                    execution = await session.get(Execution, execution_id)
                    assert execution is not None
                    if execution.status in TERMINAL:
                        return execution
                assert time.monotonic() < deadline, f"execution still {execution.status}"
                await self.engine.wait_for_change(execution_id, 0.2)
        finally:
            worker.stop()
            await running
            await self.engine.queue.close()  # the worker's LISTEN connection, on PostgreSQL

    async def step(self, execution_id: str, step_id: str) -> StepState:
        async with self.database.session() as session:
            state = await session.get(StepState, (execution_id, step_id))
            assert state is not None
            return state

    async def count_events(self, execution_id: str, type_: str) -> int:
        async with self.database.session() as session:
            found = await session.execute(
                select(func.count())
                .select_from(ExecutionEvent)
                .where(ExecutionEvent.execution_id == execution_id, ExecutionEvent.type == type_)
            )
            return int(found.scalar_one())

    async def children(self) -> int:
        async with self.database.session() as session:
            found = await session.execute(
                select(func.count())
                .select_from(Execution)
                .where(Execution.parent_execution_id.is_not(None))
            )
            return int(found.scalar_one())


def _message(row: StepState | Execution) -> str:
    """The error message a failed step or execution recorded."""
    assert row.error is not None
    return str(row.error["message"])


def _workflow(name: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "steps": list(steps)}


async def test_for_each_over_too_many_items_fails_naming_the_limit(database: Database) -> None:
    runner = Runner(database, EngineLimits(max_items=5))
    fan = {"id": "fan", "type": "transform", "for_each": "inputs.items", "with": {"v": "x"}}
    definition = _workflow("fan", fan)
    small = await runner.finish(await runner.start(definition, {"items": [1, 2, 3, 4, 5]}))
    assert small.status == "succeeded"
    execution_id = await runner.start(definition, {"items": list(range(6))})
    execution = await runner.finish(execution_id)
    assert execution.status == "failed"
    message = _message(await runner.step(execution_id, "fan"))
    assert "6 items, over the limit of 5" in message
    assert "ORCHESTRION_ENGINE__MAX_ITEMS" in message
    assert await runner.count_events(execution_id, "step.started") == 0


async def test_an_output_over_the_limit_fails_the_step_once(database: Database) -> None:
    runner = Runner(database, EngineLimits(max_output_bytes=1000))
    retried = {"max_attempts": 3, "delay": 0}
    definition = _workflow(
        "big",
        {"id": "small", "type": "big", "with": {"bytes": 900}},
        {
            "id": "large",
            "type": "big",
            "needs": ["small"],
            "with": {"bytes": 5000},
            "retry": retried,
        },
    )
    execution_id = await runner.start(definition, {})
    execution = await runner.finish(execution_id)
    assert execution.status == "failed"
    assert (await runner.step(execution_id, "small")).status == "succeeded"
    large = await runner.step(execution_id, "large")
    assert large.status == "failed"
    assert "over the limit of 1000 bytes" in _message(large)
    assert "ORCHESTRION_ENGINE__MAX_OUTPUT_BYTES" in _message(large)
    assert Counted.runs[f"{execution_id}:large"] == 1  # not retried: it would be too big again


async def test_iteration_outputs_adding_up_past_the_limit_fail_the_step(database: Database) -> None:
    runner = Runner(database, EngineLimits(max_output_bytes=2000))
    fan = {"id": "fan", "type": "big", "for_each": "inputs.items", "with": {"bytes": 900}}
    execution_id = await runner.start(_workflow("sum", fan), {"items": [1, 2, 3]})
    execution = await runner.finish(execution_id)
    assert execution.status == "failed"
    message = _message(await runner.step(execution_id, "fan"))
    assert "the iterations' outputs" in message
    assert "max_output_bytes" in message


@pytest.mark.parametrize("step_type", ["unstorable", "overflowing"])
async def test_a_result_that_cannot_be_stored_fails_once_not_forever(
    database: Database, step_type: str
) -> None:
    # A short lease: on the code before the fix the task came back again and again.
    runner = Runner(
        database,
        EngineLimits(),
        queue=TaskQueue(database, lease=timedelta(seconds=0.5)),
    )
    retried = {"max_attempts": 3, "delay": 0}
    definition = _workflow("odd", {"id": "odd", "type": step_type, "retry": retried})
    execution_id = await runner.start(definition, {})
    execution = await runner.finish(execution_id)
    assert execution.status == "failed"
    state = await runner.step(execution_id, "odd")
    assert state.status == "failed"
    assert "stor" in _message(state)  # "not storable" / "could not be stored"
    assert Counted.runs[f"{execution_id}:odd"] == 1
    assert await runner.count_events(execution_id, "step.failed") == 1
    assert await runner.engine.queue.count(queue=runner.engine.queue_name) == 0


async def test_sub_workflows_past_the_roots_budget_fail(database: Database) -> None:
    runner = Runner(database, EngineLimits(max_child_executions=3))
    runner.workflows["leaf"] = _workflow("leaf", {"id": "t", "type": "transform", "with": {}})
    fan = {
        "id": "fan",
        "type": "sub_workflow",
        "for_each": "inputs.items",
        "concurrency": 1,
        "with": {"workflow_id": "leaf"},
    }
    execution_id = await runner.start(_workflow("root", fan), {"items": [1, 2, 3, 4, 5]})
    execution = await runner.finish(execution_id)
    assert execution.status == "failed"
    message = _message(await runner.step(execution_id, "fan"))
    assert "already started 3 child executions" in message
    assert "ORCHESTRION_ENGINE__MAX_CHILD_EXECUTIONS" in message
    assert await runner.children() == 3


async def test_sub_workflows_nest_at_most_max_child_depth(database: Database) -> None:
    runner = Runner(database, EngineLimits(max_child_depth=2))
    runner.workflows["deeper"] = _workflow(
        "deeper", {"id": "again", "type": "sub_workflow", "with": {"workflow_id": "deeper"}}
    )
    execution_id = await runner.start(runner.workflows["deeper"], {})
    execution = await runner.finish(execution_id)
    assert execution.status == "failed"
    assert "ORCHESTRION_ENGINE__MAX_CHILD_DEPTH" in _message(execution)
    assert await runner.children() == 2  # depth 1 and 2; the third level was refused


async def test_a_task_handed_out_too_often_is_dead_lettered_and_fails_its_step(
    database: Database,
) -> None:
    # A lease that has always run out: every claim is a redelivery, as after a crash.
    queue = TaskQueue(database, lease=timedelta(seconds=-1), max_attempts=3)
    runner = Runner(database, EngineLimits(max_task_attempts=3), queue=queue)
    execution_id = await runner.start(
        _workflow("crashy", {"id": "s", "type": "big", "with": {"bytes": 1}}), {}
    )
    for attempt in (1, 2, 3):
        claimed = await queue.claim(queue=runner.engine.queue_name, owner=f"crashed-{attempt}")
        assert [task.attempts for task in claimed] == [attempt]
    assert await queue.claim(queue=runner.engine.queue_name, owner="next") == []
    dead = await queue.dead_letters(queue=runner.engine.queue_name)
    assert [(d.payload["step_id"], d.attempts) for d in dead] == [("s", 3)]
    async with database.session() as session:
        execution = await session.get(Execution, execution_id)
        assert execution is not None
        assert execution.status == "failed"
    message = _message(await runner.step(execution_id, "s"))
    assert "3 times" in message
    assert "ORCHESTRION_ENGINE__MAX_TASK_ATTEMPTS" in message
    assert f"{execution_id}:s" not in Counted.runs


async def test_a_dead_lettered_timer_ends_its_wait(database: Database) -> None:
    queue = TaskQueue(database, lease=timedelta(seconds=-1), max_attempts=2)
    runner = Runner(database, EngineLimits(max_task_attempts=2), queue=queue)
    name = runner.engine.queue_name
    execution_id = await runner.start(
        _workflow("nap", {"id": "nap", "type": "delay", "with": {"seconds": 0}}), {}
    )
    [run] = await queue.claim(queue=name, owner="w")
    assert run.payload["kind"] == "run"
    await runner.engine.process(run, owner="w")  # the step now waits on its timer task
    assert (await runner.step(execution_id, "nap")).status == "waiting"
    for attempt in (1, 2):
        [timer] = await queue.claim(queue=name, owner=f"crashed-{attempt}")
        assert (timer.payload["kind"], timer.attempts) == ("resume", attempt)
    assert await queue.claim(queue=name, owner="next") == []
    state = await runner.step(execution_id, "nap")
    assert state.status == "failed"
    assert "ORCHESTRION_ENGINE__MAX_TASK_ATTEMPTS" in _message(state)
