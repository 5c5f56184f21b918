"""Engine overhead: a 100-step chain and a 100-wide fan-out of no-op ``transform`` steps.

    .venv/bin/python -m bench.engine [--steps 100] [--rounds 3] [--no-postgres]
                                     [--workers 2]

Rows (each the median of ``--rounds`` runs):

- embedded, inline: SQLite; ``transform`` steps run inside the transaction that
  schedules them (the engine's fast path for pure steps).
- embedded, queued: SQLite; the same steps forced through the task queue and an
  in-process worker (a ``timeout`` makes a step leave the fast path), the cost every
  non-pure step (http, llm...) pays.
- postgres, queued: PostgreSQL at 127.0.0.1:5432 with ``--workers`` ``orchestrion
  worker`` processes (concurrency 16 each; ``--workers 1,2,4`` gives a set of rows per
  count); this process only starts executions.

Per-step overhead is the gap between consecutive ``step.succeeded`` events of the chain
(p50/p95); a fan-out reports its wall time per step. The embedded rows also count the
SQL statements per step (``stmts/step``: every statement of the process, the bench's
own few per run included): unlike the times, a count does not move with the load.
Targets (BENCH.md): <= 2 ms/step embedded, <= 5 ms/step PostgreSQL, >= 1,000 steps/s
embedded. Anchors for context: Restate ~1.4 ms/step, DBOS/Hatchet 1-5 ms, Windmill
~34 ms, Temporal ~40 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event, select

from orchestrion.engine import HTTP, Engine, Execution, ExecutionEvent, HttpAccess, Worker
from orchestrion.kernel.db.engine import Database
from orchestrion.migrations import upgrade

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"


def chain(steps: int, *, queued: bool) -> dict[str, Any]:
    """``steps`` transforms, each needing the one before."""
    extra = {"timeout": 30} if queued else {}
    return {
        "name": "chain",
        "steps": [
            {"id": f"s{i}", "type": "transform", "with": {"i": i}, **extra,
             **({"needs": [f"s{i - 1}"]} if i else {})}
            for i in range(steps)
        ],
    }  # fmt: skip


def fan_out(width: int, *, queued: bool) -> dict[str, Any]:
    """``width`` independent transforms and a join."""
    extra = {"timeout": 30} if queued else {}
    branches = [
        {"id": f"b{i}", "type": "transform", "with": {"i": i}, **extra} for i in range(width)
    ]
    join = {"id": "join", "type": "transform", "needs": [b["id"] for b in branches], "with": {}}
    return {"name": "fan", "steps": [*branches, join]}


def scenarios(steps: int) -> list[tuple[str, dict[str, Any]]]:
    """The four shapes measured on each database."""
    return [
        (f"chain {steps}, inline", chain(steps, queued=False)),
        (f"fan-out {steps}, inline", fan_out(steps, queued=False)),
        (f"chain {steps}, queued", chain(steps, queued=True)),
        (f"fan-out {steps}, queued", fan_out(steps, queued=True)),
    ]


@dataclass
class Run:
    """One measured execution."""

    seconds: float
    steps: int
    gaps_ms: list[float]


class Endings:
    """Embedded, executions end in this process: learn it from the engine's listener
    rather than reading the row after each commit (that read was one more transaction
    per step, paid by the bench, not by the engine)."""

    def __init__(self, engine: Engine) -> None:
        self.ended: dict[str, asyncio.Event] = {}
        engine.listeners.append(self.on_events)

    async def on_events(self, execution: Execution, events: list[dict[str, Any]]) -> None:
        if execution.status in ("succeeded", "failed", "cancelled"):
            self.ended.setdefault(execution.id, asyncio.Event()).set()

    async def wait(self, execution_id: str, seconds: float) -> None:
        event = self.ended.setdefault(execution_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)


class Statements:
    """Counts the SQL statements an engine's database runs (``before_cursor_execute``)."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine.database.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


async def run_once(engine: Engine, definition: dict[str, Any], endings: Endings | None) -> Run:
    """Start one execution and wait for its end; timings from its own log.

    With ``endings`` (embedded), its end is announced by the engine; otherwise (the
    workers are other processes) its row is read every 10 ms.
    """
    database = engine.database
    begin = time.perf_counter()
    async with database.session() as session:
        execution = await engine.start(
            session,
            tenant_id="bench",
            workflow_id=f"bench-{uuid.uuid4().hex[:8]}",
            version=1,
            definition=definition,
            inputs={},
            created_by=None,
        )
        execution_id = execution.id
    while True:
        async with database.session() as session:
            status = (
                await session.execute(select(Execution.status).where(Execution.id == execution_id))
            ).scalar_one()
        if status in ("succeeded", "failed", "cancelled"):
            break
        if endings is not None:
            await endings.wait(execution_id, 1.0)
        else:
            await engine.wait_for_change(execution_id, 0.01)
    seconds = time.perf_counter() - begin
    if status != "succeeded":
        raise RuntimeError(f"bench execution {execution_id} {status}")
    async with database.session() as session:
        rows = await session.execute(
            select(ExecutionEvent.at)
            .where(
                ExecutionEvent.execution_id == execution_id, ExecutionEvent.type == "step.succeeded"
            )
            .order_by(ExecutionEvent.seq)
        )
        moments = list(rows.scalars())
    gaps = [(b - a).total_seconds() * 1000 for a, b in itertools.pairwise(moments)]
    return Run(seconds=seconds, steps=len(definition["steps"]), gaps_ms=gaps)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(
    engine: Engine,
    definition: dict[str, Any],
    rounds: int,
    endings: Endings | None = None,
    statements: Statements | None = None,
) -> dict[str, float]:
    """Median wall time per step, gap percentiles and steps/s over ``rounds`` runs (and
    statements per step, when counted)."""
    await run_once(engine, definition, endings)  # warm caches and connections
    counted = statements.count if statements is not None else 0
    runs = [await run_once(engine, definition, endings) for _ in range(rounds)]
    per_step = statistics.median(r.seconds / r.steps * 1000 for r in runs)
    gaps = [g for r in runs for g in r.gaps_ms]
    figures = {
        "ms_per_step": per_step,
        "p50": _percentile(gaps, 0.5),
        "p95": _percentile(gaps, 0.95),
        "steps_per_s": 1000 / per_step,
    }
    if statements is not None:
        figures["statements"] = (statements.count - counted) / sum(r.steps for r in runs)
    return figures


def make_engine(url: str, http: httpx.AsyncClient) -> Engine:
    """An engine on ``url``."""
    return Engine(Database(url), resources={HTTP: HttpAccess(http)})


async def embedded(steps: int, rounds: int) -> list[tuple[str, dict[str, float]]]:
    """Rows measured on a fresh SQLite file with one in-process worker."""
    directory = Path(tempfile.mkdtemp(prefix="orchestrion-bench-"))
    url = f"sqlite+aiosqlite:///{directory / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)
    rows = []
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient())
        engine = make_engine(url, http)
        stack.push_async_callback(engine.database.dispose)
        endings = Endings(engine)
        statements = Statements(engine)
        worker = Worker(engine, concurrency=16, poll_seconds=0.5)
        running = asyncio.create_task(worker.run())
        try:
            for label, definition in scenarios(steps):
                figures = await measure(engine, definition, rounds, endings, statements)
                rows.append((f"embedded {label}", figures))
        finally:
            worker.stop()
            await running
    return rows


async def postgres(
    steps: int, rounds: int, workers: int, *, inline: bool = True
) -> list[tuple[str, dict[str, float]]]:
    """Rows measured on a fresh PostgreSQL database with ``workers`` worker processes
    (the inline rows only with the first count of ``--workers``: no worker runs them)."""
    name = f"orchestrion_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG}/{name}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        await asyncio.to_thread(upgrade, url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRION_")}
        env.update(ORCHESTRION_DATABASE__URL=url, ORCHESTRION_OBSERVABILITY__LOG_LEVEL="WARNING")
        command = [sys.executable, "-m", "orchestrion", "worker", "--concurrency", "16"]
        processes = [_spawn(command, env) for _ in range(workers)]
        await asyncio.sleep(2.0)  # let the workers start listening
        async with httpx.AsyncClient() as http:
            engine = make_engine(url, http)
            await engine.queue.listen()  # wake-ups for this process's waits are by polling
            try:
                return [
                    (
                        f"postgres {label}, {workers} worker{'s' if workers > 1 else ''}",
                        await measure(engine, definition, rounds),
                    )
                    for label, definition in scenarios(steps)
                    if inline or "inline" not in label
                ]
            finally:
                await engine.queue.close()
                await engine.database.dispose()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def print_table(rows: list[tuple[str, dict[str, float]]]) -> None:
    """The results, with the goal each row is held to."""
    header = (
        f"{'scenario':<40} {'ms/step':>8} {'gap p50':>8} {'gap p95':>8} {'steps/s':>9}"
        f" {'stmts/step':>10}  goal"
    )
    print(header)
    print("-" * len(header))
    for name, figures in rows:
        goal_ms = 5.0 if name.startswith("postgres") else 2.0
        verdict = "ok" if figures["ms_per_step"] <= goal_ms else "MISSED"
        budget = figures["ms_per_step"] / goal_ms
        counted = figures.get("statements")
        statements = "-" if counted is None else f"{counted:.2f}"
        print(
            f"{name:<40} {figures['ms_per_step']:>8.2f} {figures['p50']:>8.2f}"
            f" {figures['p95']:>8.2f} {figures['steps_per_s']:>9.0f} {statements:>10}"
            f"  <= {goal_ms:g} ms/step ({budget:.2f}x of budget, {verdict})"
        )


async def main() -> None:
    """Parse arguments, run the rows, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--workers",
        default="2",
        help="worker processes of the PostgreSQL rows, e.g. 1,2,4 (one set of rows each)",
    )
    args = parser.parse_args()
    print(f"$ {' '.join([Path(sys.executable).name, '-m', 'bench.engine', *sys.argv[1:]])}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = await embedded(args.steps, args.rounds)
    if not args.no_postgres:
        for position, count in enumerate(int(n) for n in args.workers.split(",")):
            rows += await postgres(args.steps, args.rounds, count, inline=position == 0)
    print_table(rows)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    asyncio.run(main())
