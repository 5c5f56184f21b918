"""``advance`` and ``settle`` read the ready steps and the counts by status that
:mod:`orchestrion.engine.runtime.progress` keeps up to date, instead of walking every
step: the same steps start in the same order, and what is kept never drifts from the
states."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from orchestrion.engine import Engine, ExecutionEvent, StepTypeRegistry, Worker
from orchestrion.engine.context import step_entries
from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType
from orchestrion.engine.runtime import core
from orchestrion.engine.runtime.progress import Progress, graph_of
from orchestrion.engine.runtime.scheduling import Scheduling
from orchestrion.engine.steps import MODULES
from orchestrion.kernel.db.engine import Database
from tests.engine.helpers import start, until_finished


class Flaky(StepType):
    """Fails its first attempt (retryable), succeeds the next."""

    name = "flaky"

    async def run(self, call: StepCall) -> Outcome:
        return Failed("not yet") if call.attempt == 1 else Succeeded(call.attempt)


def _random_workflow(seed: int, *, queued: bool) -> dict[str, Any]:
    """Steps listed in a shuffled order, each needing a few earlier-made ones; some
    skipped (``when``), some failing, a ``for_each``; queued ones only with ``queued``."""
    rng = random.Random(seed)
    steps: list[dict[str, Any]] = []
    for i in range(14):
        made = [s["id"] for s in steps]
        step: dict[str, Any] = {
            "id": f"s{i}",
            "type": "transform",
            "needs": rng.sample(made, k=min(len(made), rng.choice([0, 1, 1, 2, 3]))),
            "with": {"i": i},
        }
        if step["needs"]:
            # What the context shows of a step it needs, in its output and the log.
            need = step["needs"][0]
            step["with"]["seen"] = f"{{{{ [steps.{need}.output, steps.{need}.status] }}}}"
        roll = rng.random()
        if roll < 0.15:
            step["when"] = "false"
        elif roll < 0.2 and i > 8:
            step.update(type="fail", **{"with": {"message": "no"}})
        elif roll < 0.3:
            step["for_each"] = "{{ [1, 2, 3] }}"
        elif roll < 0.4 and queued:
            step.update(type="flaky", retry={"max_attempts": 2, "delay": 0.01})
        if queued and rng.random() < 0.5:
            step["timeout"] = 30
        steps.append(step)
    rng.shuffle(steps)
    return {"name": f"random-{seed}", "steps": steps}


async def _start(engine: Engine, definition: dict[str, Any]) -> str:
    """Start ``definition`` as workflow ``<its name>``: one id per shape."""
    return await start(engine, definition, workflow_id=definition["name"])


async def _log(engine: Engine, execution_id: str) -> list[tuple[str, str | None, Any]]:
    async with engine.database.session() as session:
        rows = await session.execute(
            select(ExecutionEvent.type, ExecutionEvent.step_id, ExecutionEvent.data)
            .where(ExecutionEvent.execution_id == execution_id)
            .order_by(ExecutionEvent.seq)
        )
        return [(str(kind), step_id, data) for kind, step_id, data in rows.all()]


async def test_the_same_steps_start_in_the_same_order_as_the_walk(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Instant steps run in the transaction that schedules them, so a run's log is the
    order ``advance`` started them in, and what each step saw of the others: identical
    with and without the kept progress."""
    engine = Engine(Database(database_url))
    try:
        logs: dict[bool, list[list[tuple[str, str | None, Any]]]] = {True: [], False: []}
        for indexed in (True, False):
            if not indexed:
                monkeypatch.setattr(core, "graph_of", lambda _definition: None)
            for seed in range(12):
                definition = _random_workflow(seed, queued=False)
                logs[indexed].append(await _log(engine, await _start(engine, definition)))
        assert logs[True] == logs[False]
        kinds = Counter(kind for log in logs[True] for kind, _, _ in log)
        # The workflows did what they were made for: skips, failures, iterations.
        assert kinds["step.skipped"]
        assert kinds["step.failed"]
        assert kinds["step.iteration_succeeded"]
    finally:
        await engine.database.dispose()


def _fresh(progress: Progress) -> Progress:
    return Progress(progress.graph, progress.states)


async def test_what_is_kept_matches_the_states_after_every_advance(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queued steps, retries, failures, iterations, skips, kept states reused across a
    worker's transactions: after every ``advance``, the kept progress is what a walk of
    the states finds."""
    checked = 0
    original = Scheduling.advance

    async def checking(self: Scheduling) -> None:
        nonlocal checked
        await original(self)
        progress = self.progress()
        assert progress is not None
        fresh = _fresh(progress)
        assert +progress.counts == +fresh.counts
        assert progress.unmet == fresh.unmet
        assert progress.ready == fresh.ready
        assert progress.entries() == step_entries(self.states)
        checked += 1

    monkeypatch.setattr(Scheduling, "advance", checking)
    registry = StepTypeRegistry(MODULES)
    registry.register(Flaky)
    engine = Engine(Database(database_url), registry=registry)
    worker = Worker(engine, concurrency=4, poll_seconds=0.2)
    running = asyncio.create_task(worker.run())
    definitions = [_random_workflow(seed, queued=True) for seed in range(8)]
    kinds: Counter[str] = Counter()
    try:
        ids = [await _start(engine, definition) for definition in definitions]
        for execution_id in ids:
            await until_finished(engine, execution_id)
            kinds.update(kind for kind, _, _ in await _log(engine, execution_id))
    finally:
        worker.stop()
        await running
        await engine.queue.close()
        await engine.database.dispose()
    assert kinds["step.retry_scheduled"]
    assert kinds["step.skipped"]
    assert kinds["step.failed"]
    assert checked > len(definitions) * 3


def test_a_definition_with_a_shared_id_or_an_unknown_need_has_no_graph() -> None:
    from orchestrion.engine.definition import WorkflowDefinition

    shared = WorkflowDefinition.model_validate(
        {"name": "w", "steps": [{"id": "a", "type": "transform"}] * 2}
    )
    unknown = WorkflowDefinition.model_validate(
        {"name": "w", "steps": [{"id": "a", "type": "transform", "needs": ["b"]}]}
    )
    fine = WorkflowDefinition.model_validate(
        {
            "name": "w",
            "steps": [
                {"id": "a", "type": "transform", "needs": ["b"]},
                {"id": "b", "type": "transform"},
            ],
        }
    )
    assert graph_of(shared) is None
    assert graph_of(unknown) is None
    graph = graph_of(fine)
    assert graph is not None
    assert graph_of(fine) is graph  # built once per parsed definition
    assert graph.dependents == {"b": (0,)}
