"""The projector on a real database: entries count once whatever the order or the
number of deliveries; a retried execution moves from failed to succeeded; past the
exact limit, percentiles come from the sketch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.db.engine import Database
from orchestrion.services.analytics import service
from orchestrion.services.analytics.consumer import apply
from orchestrion.services.analytics.figures import collect
from orchestrion.services.analytics.models import AnalyticsDurationBin
from orchestrion.services.analytics.projection import ExecutionEvent
from orchestrion.services.analytics.repository import Scope

TENANT = "00000000-0000-7000-8000-0000000000aa"
WORKFLOW = "00000000-0000-7000-8000-0000000000wf"
T0 = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)


def entry(execution: str, seq: int, kind: str, ms: float, **data: Any) -> ExecutionEvent:
    at = T0 + timedelta(milliseconds=ms)
    return ExecutionEvent.model_validate(
        {
            "tenant_id": TENANT,
            "execution_id": execution,
            "workflow_id": WORKFLOW,
            "event": {
                "seq": seq,
                "type": kind,
                "step_id": data.pop("step_id", None),
                "data": data,
                "at": at.isoformat(),
            },
        }
    )


def llm_output(tokens_in: int, tokens_out: int, cost: float) -> dict[str, Any]:
    return {
        "text": "hi",
        "model": "m1",
        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out, "cost_usd": cost},
    }


def run_of(execution: str, *, fails: bool = False, ms: float = 100.0) -> list[ExecutionEvent]:
    end = "execution.failed" if fails else "execution.succeeded"
    step = (
        ("step.failed", {"error": {"message": "x"}, "attempt": 1, "index": None})
        if fails
        else ("step.succeeded", {"output": llm_output(10, 5, 0.25), "attempt": 1})
    )
    return [
        entry(execution, 1, "execution.started", 0, workflow_version=1),
        entry(execution, 2, "step.started", 1, step_id="a"),
        entry(execution, 3, step[0], ms / 2, step_id="a", **step[1]),
        entry(execution, 4, end, ms),
    ]


async def figures(database: Database) -> dict[str, Any]:
    async with database.session() as session:
        found = await collect(session, Scope(tenant_id=TENANT))
        return found[()].to_dict()


async def test_each_entry_counts_once_in_any_order(database: Database) -> None:
    events = run_of("e1", ms=100) + run_of("e2", fails=True, ms=300)
    for event in reversed(events):  # the worst order
        await apply(database, event)
    for event in events:  # and everything again
        outcome = await apply(database, event)
        assert outcome.applied is False
    found = await figures(database)
    assert found["executions"] == {
        "total": 2,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
        "success_rate": 0.5,
    }
    assert found["duration_ms"]["p50"] == 200.0
    assert found["steps"] == {"total": 2, "failed": 1}
    assert found["tokens"] == {"input": 10, "output": 5}
    assert found["cost_usd"] == 0.25


async def test_a_retried_execution_moves_from_failed_to_succeeded(database: Database) -> None:
    for event in run_of("e1", fails=True, ms=100):
        await apply(database, event)
    assert (await figures(database))["executions"]["failed"] == 1
    await apply(database, entry("e1", 5, "execution.retried", 5000, by="someone"))
    middle = await figures(database)
    assert middle["executions"]["failed"] == 0
    assert middle["duration_ms"]["p50"] is None  # running again: no duration
    await apply(
        database,
        entry(
            "e1", 6, "step.succeeded", 5100, step_id="a", attempt=1, output=llm_output(1, 1, 0.5)
        ),
    )
    await apply(database, entry("e1", 7, "execution.succeeded", 5200, outputs={}))
    found = await figures(database)
    assert found["executions"]["succeeded"] == 1
    assert found["executions"]["total"] == 1
    assert found["duration_ms"]["p50"] == 5200.0
    assert found["steps"] == {"total": 2, "failed": 1}
    assert found["cost_usd"] == 0.5
    async with database.session() as session:
        live = await session.execute(
            select(func.sum(AnalyticsDurationBin.count)).where(AnalyticsDurationBin.count != 0)
        )
        assert live.scalar_one() == 1  # the failed run's bin was taken out again


async def test_past_the_exact_limit_percentiles_come_from_the_sketch(
    database: Database,
) -> None:
    durations = [float(10 * (i + 1)) for i in range(40)]  # 10..400 ms
    for i, ms in enumerate(durations):
        for event in run_of(f"e{i}", ms=ms):
            await apply(database, event)
    async with database.session() as session:
        exact = (await collect(session, Scope(tenant_id=TENANT)))[()]
        sketched = (await collect(session, Scope(tenant_id=TENANT), exact_max=10))[()]
    assert exact.exact
    assert not sketched.exact
    assert exact.durations()["p50"] == 205.0
    for p in ("p50", "p95", "p99"):
        assert sketched.durations()[p] == pytest.approx(exact.durations()[p], rel=0.05)


async def test_ranges_round_to_whole_hours_and_series_fill_gaps(database: Database) -> None:
    for event in run_of("e1", ms=100):
        await apply(database, event)
    admin = Principal(subject="u", tenant_id=TENANT, permissions=frozenset({"platform:admin"}))
    inside = service.scope(admin, start=T0, end=T0 + timedelta(minutes=10))
    assert inside.start == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert inside.end == datetime(2026, 12, 1, 11, tzinfo=UTC)
    async with database.session() as session:
        first, last = service.series_range("hour", T0 - timedelta(hours=2), T0)
        scope = service.scope(admin, start=first, end=last)
        points = await service.timeseries(
            session, scope=scope, metric="executions", interval="hour"
        )
    assert [p["value"] for p in points] == [0, 0, 1]
    assert points[-1]["at"] == "2026-12-01T10:00:00Z"
