"""Queries of the analytics service: projection rows, aggregate deltas, grouped reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.services.analytics.models import (
    AnalyticsBucket,
    AnalyticsDurationBin,
    AnalyticsExecution,
    AnalyticsModelUsage,
    AnalyticsSlo,
)

#: The sums a bucket row holds, in the order :func:`bucket_sums` answers them.
BUCKET_SUMS = (
    "executions",
    "succeeded",
    "failed",
    "cancelled",
    "durations",
    "duration_sum_ms",
    "steps_total",
    "steps_failed",
    "input_tokens",
    "output_tokens",
    "cost_usd",
)
TERMINAL = ("succeeded", "failed", "cancelled")
#: Columns a read may group by.
GROUPS: Mapping[str, Any] = {
    "tenant_id": AnalyticsBucket.tenant_id,
    "workflow_id": AnalyticsBucket.workflow_id,
    "bucket_at": AnalyticsBucket.bucket_at,
}


@dataclass(frozen=True)
class Scope:
    """What a read covers: one tenant (None: all), one workflow or all, an hour range."""

    tenant_id: str | None
    workflow_id: str | None = None
    workflow_ids: tuple[str, ...] | None = None
    #: First hour included (a bucket start), or None.
    start: datetime | None = None
    #: First hour excluded, or None.
    end: datetime | None = None

    def where(self, table: Any) -> list[ColumnElement[bool]]:
        """The conditions on ``table`` (any table with tenant, workflow and bucket)."""
        found: list[ColumnElement[bool]] = []
        if self.tenant_id is not None:
            found.append(table.tenant_id == self.tenant_id)
        if self.workflow_id is not None:
            found.append(table.workflow_id == self.workflow_id)
        if self.workflow_ids is not None:
            found.append(table.workflow_id.in_(self.workflow_ids))
        if self.start is not None:
            found.append(table.bucket_at >= self.start)
        if self.end is not None:
            found.append(table.bucket_at < self.end)
        return found


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if _postgres(session) else sqlite.insert


# --- the projection's writes --------------------------------------------------------------


async def executions_for_update(
    session: AsyncSession, keys: Mapping[str, tuple[str, str]]
) -> dict[str, AnalyticsExecution]:
    """The rows of the executions ``{execution_id: (tenant_id, workflow_id)}``, locked
    for this transaction in id order, those missing created."""
    if not keys:
        return {}
    ids = sorted(keys)
    stmt = (
        select(AnalyticsExecution)
        .where(AnalyticsExecution.execution_id.in_(ids))
        .order_by(AnalyticsExecution.execution_id)
    )
    if _postgres(session):
        stmt = stmt.with_for_update()
    rows = {row.execution_id: row for row in (await session.execute(stmt)).scalars()}
    missing = [execution_id for execution_id in ids if execution_id not in rows]
    if not missing:
        return rows
    await session.execute(
        _insert(session)(AnalyticsExecution)
        .values(
            [
                {
                    "execution_id": execution_id,
                    "tenant_id": keys[execution_id][0],
                    "workflow_id": keys[execution_id][1],
                    "status": "pending",
                    "status_seq": 0,
                    "steps_total": 0,
                    "steps_failed": 0,
                    "models": {},
                    "seq_done": 0,
                    "seq_extra": [],
                }
                for execution_id in missing
            ]
        )
        .on_conflict_do_nothing()
    )
    # Another projector may have created some of them meanwhile: read them all again.
    again = stmt.where(AnalyticsExecution.execution_id.in_(missing)).execution_options(
        populate_existing=True
    )
    rows.update((row.execution_id, row) for row in (await session.execute(again)).scalars())
    return rows


async def add_to(
    session: AsyncSession, table: Any, key: Mapping[str, Any], values: Mapping[str, Any]
) -> None:
    """Add ``values`` to the row of ``table`` at ``key`` (created when missing)."""
    insert = _insert(session)(table).values(**key, **values)
    stmt = insert.on_conflict_do_update(
        index_elements=list(key),
        set_={name: getattr(table, name) + insert.excluded[name] for name in values},
    )
    await session.execute(stmt)


async def clear_projections(session: AsyncSession) -> None:
    """Forget every projection (SLO definitions stay): the start of a rebuild."""
    for table in (AnalyticsModelUsage, AnalyticsDurationBin, AnalyticsBucket, AnalyticsExecution):
        await session.execute(delete(table))


# --- grouped reads ------------------------------------------------------------------------


def _grouped(stmt: Select[Any], columns: Sequence[Any]) -> Select[Any]:
    return stmt.group_by(*columns) if columns else stmt


async def bucket_sums(
    session: AsyncSession, scope: Scope, by: Sequence[str] = ()
) -> list[tuple[tuple[Any, ...], list[Any]]]:
    """``(group key, sums in BUCKET_SUMS order)`` for each group of bucket rows."""
    groups = [getattr(AnalyticsBucket, name) for name in by]
    sums = [func.coalesce(func.sum(getattr(AnalyticsBucket, n)), 0) for n in BUCKET_SUMS]
    stmt = _grouped(select(*groups, *sums).where(*scope.where(AnalyticsBucket)), groups)
    rows = (await session.execute(stmt)).all()
    return [(tuple(row[: len(groups)]), list(row[len(groups) :])) for row in rows]


async def duration_bins(
    session: AsyncSession, scope: Scope, by: Sequence[str] = ()
) -> list[tuple[tuple[Any, ...], int, int]]:
    """``(group key, bin, count)`` of the sketch over ``scope``."""
    groups = [getattr(AnalyticsDurationBin, name) for name in by]
    table = AnalyticsDurationBin
    stmt = (
        select(*groups, table.bin, func.sum(table.count))
        .where(*scope.where(table))
        .group_by(*groups, table.bin)
    )
    rows = (await session.execute(stmt)).all()
    n = len(groups)
    return [(tuple(row[:n]), int(row[n]), int(row[n + 1])) for row in rows]


async def raw_durations(
    session: AsyncSession, scope: Scope, by: Sequence[str] = ()
) -> list[tuple[tuple[Any, ...], float]]:
    """``(group key, duration)`` of every finished execution in ``scope``."""
    table = AnalyticsExecution
    groups = [getattr(table, name) for name in by]
    stmt = select(*groups, table.duration_ms).where(
        *scope.where(table), table.duration_ms.is_not(None), table.status.in_(TERMINAL)
    )
    rows = (await session.execute(stmt)).all()
    n = len(groups)
    return [(tuple(row[:n]), float(row[n])) for row in rows]


async def model_sums(session: AsyncSession, scope: Scope) -> list[tuple[str, int, int, int, float]]:
    """``(model, calls, input tokens, output tokens, cost)`` over ``scope``, costliest first."""
    table = AnalyticsModelUsage
    cost = func.sum(table.cost_usd)
    stmt = (
        select(
            table.model,
            func.sum(table.calls),
            func.sum(table.input_tokens),
            func.sum(table.output_tokens),
            cost,
        )
        .where(*scope.where(table))
        .group_by(table.model)
        .order_by(cost.desc(), table.model)
    )
    rows = (await session.execute(stmt)).all()
    return [(str(r[0]), int(r[1]), int(r[2]), int(r[3]), float(r[4])) for r in rows]


# --- per-workflow pages -------------------------------------------------------------------


def workflow_groups(scope: Scope) -> Select[Any]:
    """One row per (tenant, workflow) with every sum, labelled by its name."""
    table = AnalyticsBucket
    sums = [func.coalesce(func.sum(getattr(table, n)), 0).label(n) for n in BUCKET_SUMS]
    stmt: Select[Any] = (
        select(table.tenant_id, table.workflow_id, *sums)  # type: ignore[assignment]
        .where(*scope.where(table))
        .group_by(table.tenant_id, table.workflow_id)
    )
    return stmt


async def count_rows(session: AsyncSession, stmt: Select[Any]) -> int:
    """How many rows ``stmt`` answers."""
    total = await session.execute(select(func.count()).select_from(stmt.subquery()))
    return int(total.scalar_one())


# --- windows of recent executions (SLOs) --------------------------------------------------


async def finished_since(
    session: AsyncSession, *, tenant_id: str, workflow_id: str | None, since: datetime
) -> dict[str, int]:
    """Executions of the tenant finished since ``since``, counted by status."""
    table = AnalyticsExecution
    stmt = (
        select(table.status, func.count())
        .where(table.tenant_id == tenant_id, table.finished_at >= since)
        .where(table.status.in_(TERMINAL))
        .group_by(table.status)
    )
    if workflow_id is not None:
        stmt = stmt.where(table.workflow_id == workflow_id)
    return {str(status): int(n) for status, n in (await session.execute(stmt)).all()}


async def durations_since(
    session: AsyncSession, *, tenant_id: str, workflow_id: str | None, since: datetime
) -> list[float]:
    """Durations of the tenant's executions finished since ``since``."""
    table = AnalyticsExecution
    stmt = select(table.duration_ms).where(
        table.tenant_id == tenant_id,
        table.finished_at >= since,
        table.status.in_(TERMINAL),
        table.duration_ms.is_not(None),
    )
    if workflow_id is not None:
        stmt = stmt.where(table.workflow_id == workflow_id)
    return [float(v) for v in (await session.execute(stmt)).scalars() if v is not None]


# --- SLOs ---------------------------------------------------------------------------------


def slos_of(tenant_id: str | None) -> Select[Any]:
    """SLOs of a tenant (every tenant's when None), oldest first."""
    stmt = select(AnalyticsSlo).order_by(AnalyticsSlo.created_at, AnalyticsSlo.id)
    if tenant_id is not None:
        stmt = stmt.where(AnalyticsSlo.tenant_id == tenant_id)
    return stmt


async def slos_for(
    session: AsyncSession, *, tenant_id: str, workflow_id: str
) -> list[AnalyticsSlo]:
    """SLOs that an execution of ``workflow_id`` counts in."""
    stmt = slos_of(tenant_id).where(
        (AnalyticsSlo.workflow_id.is_(None)) | (AnalyticsSlo.workflow_id == workflow_id)
    )
    return list((await session.execute(stmt)).scalars())
