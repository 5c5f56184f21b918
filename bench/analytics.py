"""Analytics: events/s the projector sustains, and summary latency over many executions.

    .venv/bin/python -m bench.analytics [--executions 500] [--bulk 1000000] [--no-postgres]
                                        [--projector-only]

Projector: ``--executions`` executions of 4 events each (started, step started, an
``llm``-shaped step succeeded, succeeded; one in ten failed), on a migrated SQLite file
and a fresh PostgreSQL database, three ways side by side:

- ``one per tx``: one event per transaction through :func:`consumer.apply` (what the bus
  handler did before batching);
- ``batched``: published as CloudEvents on an in-process bus to the group's real handler
  (``consumer.handler`` with its :class:`consumer.Batcher`, ``CONCURRENCY`` handlers),
  timed from the first publish to the last handler's return (after its batch committed):
  bus, dedup and batches included;
- ``bare append``: the same events appended one per transaction to a bare table (``id``,
  ``body``) through the same ``Database``: what storing each event alone costs.

Ratios: batched over one per tx (the batching's gain), and each over the bare append.

Summary: ``--bulk`` executions of 10 workflows over 30 days generated in bulk straight
into the projection tables (execution rows, hourly buckets, duration bins; durations
log-normal around 200 ms), then ``GET /summary``'s service call for all time (the
sketch path: more than 10,000 durations) and for one workflow over one day (the exact
path), best of 5 and median. Baseline: the naive read the projection replaces, every
raw duration selected and sorted in Python for the all-time percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text

from bench.content import postgres_database
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.bus import CloudEvent
from orchestrion.kernel.bus.memory import MemoryBus
from orchestrion.kernel.db.engine import Database
from orchestrion.migrations import upgrade
from orchestrion.services.analytics import consumer, service
from orchestrion.services.analytics.consumer import apply
from orchestrion.services.analytics.digest import bin_of
from orchestrion.services.analytics.projection import ExecutionEvent

TENANT = "00000000-0000-7000-8000-00000000be0c"
WORKFLOWS = [f"00000000-0000-7000-8000-0000000000{i:02d}" for i in range(10)]
START = datetime(2026, 11, 1, tzinfo=UTC)
ADMIN = Principal(subject="bench", tenant_id=TENANT, permissions=frozenset())


def events_of(n: int) -> list[ExecutionEvent]:
    found = []
    rng = random.Random(1)
    for i in range(n):
        execution = str(uuid.uuid4())
        t0 = START + timedelta(seconds=i)
        ms = rng.lognormvariate(5, 0.5)
        output = {"model": "m", "usage": {"input_tokens": 10, "output_tokens": 5, "cost_usd": 1e-4}}
        end = "execution.failed" if i % 10 == 0 else "execution.succeeded"
        for seq, kind, at, data in (
            (1, "execution.started", 0, {"workflow_version": 1}),
            (2, "step.started", 1, {}),
            (3, "step.succeeded", ms / 2, {"output": output, "attempt": 1}),
            (4, end, ms, {}),
        ):
            found.append(
                ExecutionEvent.model_validate(
                    {
                        "tenant_id": TENANT,
                        "execution_id": execution,
                        "workflow_id": WORKFLOWS[i % 10],
                        "event": {
                            "seq": seq,
                            "type": kind,
                            "step_id": "a" if seq in (2, 3) else None,
                            "data": data,
                            "at": (t0 + timedelta(milliseconds=at)).isoformat(),
                        },
                    }
                )
            )
    return found


async def batched(database: Database, events: list[ExecutionEvent]) -> float:
    """Events/s through the in-process bus to the group's handler, in batches."""
    async with MemoryBus() as bus:
        batcher = consumer.Batcher(database, evaluate_slos=False)
        handle = consumer.handler(bus, batcher)
        handled = [0]
        finished = asyncio.Event()

        async def counting(event: CloudEvent) -> None:
            await handle(event)  # returns once its batch committed
            handled[0] += 1
            if handled[0] == len(events):
                finished.set()

        subscription = await bus.subscribe(
            consumer.TOPIC, consumer.GROUP, counting, concurrency=consumer.CONCURRENCY
        )
        clouds = [
            CloudEvent(
                source=consumer.SOURCE,
                type=f"orchestrion.{event.event.type}",
                data=event.model_dump(mode="json"),
            )
            for event in events
        ]
        try:
            started = time.perf_counter()
            for cloud in clouds:
                await bus.publish(consumer.TOPIC, cloud)
            await finished.wait()
            return len(events) / (time.perf_counter() - started)
        finally:
            await subscription.stop()
            await batcher.close()


async def projector(url: str, executions: int) -> tuple[float, float, float]:
    """(events/s one per transaction, events/s batched, events/s appended to a bare table)."""
    database = Database(url)
    try:
        async with database.session() as session:
            await session.execute(
                text("CREATE TABLE bench_log (id VARCHAR(64) PRIMARY KEY, body TEXT)")
            )
        events = events_of(executions)
        started = time.perf_counter()
        for event in events:
            await apply(database, event, evaluate_slos=False)
        single = len(events) / (time.perf_counter() - started)
        many = await batched(database, events_of(executions))
        started = time.perf_counter()
        for event in events:
            async with database.session() as session:
                await session.execute(
                    text("INSERT INTO bench_log (id, body) VALUES (:id, :body)"),
                    {"id": str(uuid.uuid4()), "body": event.model_dump_json()},
                )
        bare = len(events) / (time.perf_counter() - started)
        return single, many, bare
    finally:
        await database.dispose()


def bulk_rows(n: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Execution rows, bucket rows and bin rows of ``n`` executions over 30 days."""
    rng = random.Random(2)
    span = 30 * 24 * 3600
    executions, buckets, bins = [], {}, {}
    for i in range(n):
        workflow = WORKFLOWS[i % 10]
        at = START + timedelta(seconds=rng.uniform(0, span))
        hour = at.replace(minute=0, second=0, microsecond=0)
        ms = round(rng.lognormvariate(5.3, 0.6), 3)
        status = "failed" if i % 20 == 0 else "succeeded"
        executions.append(
            (
                str(uuid.uuid4()),
                TENANT,
                workflow,
                status,
                4,
                at,
                hour,
                at + timedelta(milliseconds=ms),
                ms,
                1,
                0,
                "{}",
                4,
                "[]",
            )
        )
        b = buckets.setdefault((workflow, hour), [0, 0, 0, 0.0])
        b[0] += 1
        b[1] += status == "succeeded"
        b[2] += status == "failed"
        b[3] += ms
        key = (workflow, hour, bin_of(ms))
        bins[key] = bins.get(key, 0) + 1
    bucket_rows = [
        (TENANT, w, h, c, s, f, 0, c, total, c, 0, 0, 0, 0.0)
        for (w, h), (c, s, f, total) in buckets.items()
    ]
    bin_rows = [(TENANT, w, h, k, c) for (w, h, k), c in bins.items()]
    return executions, bucket_rows, bin_rows


EXEC_COLS = (
    "execution_id, tenant_id, workflow_id, status, status_seq, started_at, bucket_at, "
    "finished_at, duration_ms, steps_total, steps_failed, models, seq_done, seq_extra"
)
BUCKET_COLS = (
    "tenant_id, workflow_id, bucket_at, executions, succeeded, failed, cancelled, "
    "durations, duration_sum_ms, steps_total, steps_failed, input_tokens, "
    "output_tokens, cost_usd"
)


async def fill(url: str, rows: tuple[list[Any], list[Any], list[Any]]) -> None:
    executions, buckets, bins = rows
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.split("///", 1)[1])

        def iso(row: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(v.isoformat(" ") if isinstance(v, datetime) else v for v in row)

        connection.executemany(
            f"INSERT INTO analytics_executions ({EXEC_COLS}) VALUES ({','.join('?' * 14)})",
            map(iso, executions),
        )
        connection.executemany(
            f"INSERT INTO analytics_buckets ({BUCKET_COLS}) VALUES ({','.join('?' * 14)})",
            map(iso, buckets),
        )
        connection.executemany(
            "INSERT INTO analytics_duration_bins VALUES (?,?,?,?,?)", map(iso, bins)
        )
        connection.commit()
        connection.close()
        return
    pg = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await pg.copy_records_to_table(
            "analytics_executions", records=executions, columns=EXEC_COLS.split(", ")
        )
        await pg.copy_records_to_table(
            "analytics_buckets", records=buckets, columns=BUCKET_COLS.split(", ")
        )
        await pg.copy_records_to_table("analytics_duration_bins", records=bins)
        await pg.execute("ANALYZE")
    finally:
        await pg.close()


async def timed(call: Callable[[], Any], rounds: int = 5) -> tuple[float, float]:
    found = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        found.append((time.perf_counter() - started) * 1000)
    return min(found), statistics.median(found)


async def summaries(url: str) -> list[tuple[str, float, float]]:
    database = Database(url)
    try:

        async def all_time() -> None:
            async with database.session() as session:
                await service.summary(session, scope=service.scope(ADMIN))

        day = START + timedelta(days=10)
        one_day = service.scope(
            ADMIN, workflow_id=WORKFLOWS[0], start=day, end=day + timedelta(days=1)
        )

        async def exact_day() -> None:
            async with database.session() as session:
                body = await service.summary(session, scope=one_day)
                assert body["duration_ms"]["exact"], body

        async def naive() -> None:
            async with database.session() as session:
                values = sorted(
                    (
                        await session.execute(
                            text(
                                "SELECT duration_ms FROM analytics_executions WHERE tenant_id = :t"
                            ),
                            {"t": TENANT},
                        )
                    ).scalars()
                )
                assert values

        return [
            ("summary, all time (sketch)", *await timed(all_time)),
            ("summary, 1 workflow, 1 day (exact)", *await timed(exact_day)),
            ("naive: sort every duration", *await timed(naive, rounds=3)),
        ]
    finally:
        await database.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=500)
    parser.add_argument("--bulk", type=int, default=1_000_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--projector-only", action="store_true", help="skip the summary over --bulk executions"
    )
    args = parser.parse_args()
    print("$ python -m bench.analytics " + " ".join(sys.argv[1:]))
    with tempfile.TemporaryDirectory() as tmp:
        targets: list[tuple[str, str, Any]] = []
        for name in ("projector", "bulk"):
            path = Path(tmp) / f"{name}.db"
            await asyncio.to_thread(upgrade, f"sqlite+aiosqlite:///{path}")
            targets.append(("sqlite", f"sqlite+aiosqlite:///{path}", None))
        dbs = {"sqlite": (targets[0][1], targets[1][1], [])}
        if not args.no_postgres:
            a, drop_a = await postgres_database()
            b, drop_b = await postgres_database()
            dbs["postgresql"] = (a, b, [drop_a, drop_b])
        rows = bulk_rows(0 if args.projector_only else args.bulk)
        try:
            print(
                f"\nprojector: {args.executions * 4} events; batches of up to "
                f"{consumer.BATCH_SIZE}, {consumer.LINGER * 1000:g} ms linger"
            )
            print(
                f"{'database':12} {'one per tx/s':>13} {'batched/s':>10} {'bare append/s':>14}"
                f" {'batched/one':>12} {'one/bare':>9} {'batched/bare':>13}"
            )
            for name, (projector_url, _, _) in dbs.items():
                single, many, bare = await projector(projector_url, args.executions)
                print(
                    f"{name:12} {single:>13.0f} {many:>10.0f} {bare:>14.0f}"
                    f" {many / single:>11.1f}x {single / bare:>8.2f}x {many / bare:>12.2f}x"
                )
            if args.projector_only:
                return
            print(f"\nsummary over {args.bulk:,} executions (10 workflows, 30 days)")
            print(f"{'database':12} {'read':36} {'best ms':>9} {'p50 ms':>9}")
            for name, (_, bulk_url, _) in dbs.items():
                await fill(bulk_url, rows)
                for label, best, p50 in await summaries(bulk_url):
                    print(f"{name:12} {label:36} {best:>9.1f} {p50:>9.1f}")
        finally:
            for _, _, drops in dbs.values():
                for drop in drops:
                    await drop()


if __name__ == "__main__":
    asyncio.run(main())
