"""Queries of executions, their step states and their event log (the engine's tables)."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from orchestrion.engine import Execution, ExecutionEvent, StepState
from orchestrion.kernel.http.lists import (
    MAX_LIMIT,
    ListQuery,
    ListSpec,
    Page,
    equals,
    fetch_page,
    one_of,
)

EXECUTION_LIST = ListSpec(
    sortable={
        "created_at": Execution.created_at,
        "finished_at": Execution.finished_at,
        "status": Execution.status,
    },
    filters={
        # Several ids (comma-separated): one call serves a page of workflows.
        "workflow_id": one_of(Execution.workflow_id),
        "status": equals(Execution.status),
        "parent_execution_id": equals(Execution.parent_execution_id),
    },
    fields=frozenset(
        {
            "id",
            "workflow_id",
            "workflow_version",
            "status",
            "inputs",
            "outputs",
            "error",
            "steps",
            "usage",
            "parent_execution_id",
            "created_at",
            "started_at",
            "finished_at",
            "trace_id",
        }
    ),
    id_column=Execution.id,
)


def executions_of(tenant_id: str) -> Select[Execution]:
    """A tenant's executions."""
    return select(Execution).where(Execution.tenant_id == tenant_id)


async def page_of(session: AsyncSession, *, tenant_id: str, query: ListQuery) -> Page:
    """One page of a tenant's executions."""
    return await fetch_page(session, executions_of(tenant_id), EXECUTION_LIST, query)


async def first_per_workflow(
    session: AsyncSession, *, tenant_id: str, query: ListQuery, per_workflow: int
) -> Page:
    """The first ``per_workflow`` executions of each workflow in the sort order, after the
    filters, for 100 workflows at most; ``total`` counts every execution the filters match."""
    stmt = executions_of(tenant_id)
    for name, value in query.filters.items():
        stmt = stmt.where(EXECUTION_LIST.filters[name](value))
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    columns = [EXECUTION_LIST.sortable[name] for name, _ in query.sort] + [Execution.id]
    descending = [desc for _, desc in query.sort] + [query.sort[-1][1] if query.sort else False]
    order = [c.desc() if d else c.asc() for c, d in zip(columns, descending, strict=True)]
    rank = func.row_number().over(partition_by=Execution.workflow_id, order_by=order)
    ranked = stmt.add_columns(rank.label("rank")).subquery()
    row = aliased(Execution, ranked)
    outer = [getattr(row, c.key) for c in columns]
    rows = await session.execute(
        select(row)
        .where(ranked.c.rank <= per_workflow)
        .order_by(*[c.desc() if d else c.asc() for c, d in zip(outer, descending, strict=True)])
        .limit(per_workflow * MAX_LIMIT)
    )
    return Page(rows=list(rows.scalars()), total=total, next_cursor=None)


async def get(session: AsyncSession, *, tenant_id: str, execution_id: str) -> Execution | None:
    """An execution of the tenant, or None (another tenant's is None too)."""
    result = await session.execute(executions_of(tenant_id).where(Execution.id == execution_id))
    return result.scalar_one_or_none()


async def get_any(session: AsyncSession, *, execution_id: str) -> Execution | None:
    """An execution by id, whatever its tenant."""
    return await session.get(Execution, execution_id)


async def recent(session: AsyncSession, *, tenant_id: str, limit: int) -> list[Execution]:
    """The tenant's latest executions, newest first."""
    rows = await session.execute(
        executions_of(tenant_id).order_by(Execution.created_at.desc()).limit(limit)
    )
    return list(rows.scalars())


async def step_states(
    session: AsyncSession, *, execution_ids: list[str]
) -> dict[str, list[StepState]]:
    """Step states of several executions, by execution id."""
    if not execution_ids:
        return {}
    rows = await session.execute(select(StepState).where(StepState.execution_id.in_(execution_ids)))
    found: dict[str, list[StepState]] = {}
    for row in rows.scalars():
        found.setdefault(row.execution_id, []).append(row)
    return found


async def events(
    session: AsyncSession, *, execution_id: str, after: int, until: int | None, limit: int
) -> list[ExecutionEvent]:
    """Log entries with ``after < seq <= until``, oldest first."""
    stmt = select(ExecutionEvent).where(
        ExecutionEvent.execution_id == execution_id, ExecutionEvent.seq > after
    )
    if until is not None:
        stmt = stmt.where(ExecutionEvent.seq <= until)
    rows = await session.execute(stmt.order_by(ExecutionEvent.seq).limit(limit))
    return list(rows.scalars())


async def events_until(
    session: AsyncSession, *, execution_id: str, until: int
) -> list[ExecutionEvent]:
    """Every log entry up to ``seq == until``, oldest first."""
    rows = await session.execute(
        select(ExecutionEvent)
        .where(ExecutionEvent.execution_id == execution_id, ExecutionEvent.seq <= until)
        .order_by(ExecutionEvent.seq)
    )
    return list(rows.scalars())
