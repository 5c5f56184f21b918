"""The rules of analytics reads: who sees which tenant, time ranges, and the figures of
the summary, the per-workflow list, the series and the report; SLOs."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.http.lists import ListQuery, ListSpec
from orchestrion.kernel.ids import isoformat, utcnow
from orchestrion.services.analytics import repository, slos
from orchestrion.services.analytics.errors import InvalidRange, OtherTenant, SloNotFound
from orchestrion.services.analytics.figures import Figures, collect
from orchestrion.services.analytics.models import AnalyticsSlo
from orchestrion.services.analytics.projection import hour_of
from orchestrion.services.analytics.repository import Scope
from orchestrion.services.analytics.schemas import AnalyticsDurationSlo, AnalyticsSuccessRateSlo

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
#: Times are clamped to this span (whole intervals around them stay representable).
EARLIEST = datetime(1, 1, 3, tzinfo=UTC)
LATEST = datetime(9999, 12, 29, tzinfo=UTC)
#: A series answers at most this many points.
MAX_POINTS = 5_000
_DEFAULT_SPAN = {"hour": DAY, "day": timedelta(days=30)}
FIGURE_FIELDS = frozenset({"executions", "duration_ms", "steps", "tokens", "cost_usd"})
_SORTABLE = (
    "executions",
    "succeeded",
    "failed",
    "cancelled",
    "steps_failed",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "workflow_id",
)


def _ignored(_value: str) -> Any:  # the filters are read into a Scope, not a WHERE clause
    return None


WORKFLOW_LIST = ListSpec(
    sortable={name: name for name in _SORTABLE},
    filters=dict.fromkeys(("from", "to", "workflow_id", "tenant_id"), _ignored),
    fields=frozenset({"id", "workflow_id", "tenant_id", *FIGURE_FIELDS}),
    default_sort="executions:desc",
)


# --- who and when -------------------------------------------------------------------------


def tenant_scope(principal: Principal, tenant_id: str | None) -> str | None:
    """The tenant a read covers: one's own; a platform admin's choice, or every tenant."""
    if principal.is_platform_admin:
        return tenant_id or None
    if tenant_id is not None and tenant_id != principal.tenant_id:
        raise OtherTenant("reading another tenant's figures needs platform:admin")
    return principal.tenant_id


def parse_time(raw: str | None, name: str) -> datetime | None:
    """An ISO 8601 query parameter as aware UTC (naive is taken as UTC); 400 if malformed."""
    if raw is None:
        return None
    text = raw.strip().replace(" ", "+")
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:  # the empty string too: the document says a date-time
        raise InvalidRange(
            f"'{name}' must be an ISO 8601 time, e.g. 2026-12-01T00:00:00Z",
            errors=[{"loc": ["query", name], "msg": "not an ISO 8601 time"}],
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Years 1 and 9999 with an offset fall outside what a datetime holds once in UTC.
    naive = moment.replace(tzinfo=None) - (moment.utcoffset() or timedelta())
    if naive < EARLIEST.replace(tzinfo=None):
        return EARLIEST
    if naive > LATEST.replace(tzinfo=None):
        return LATEST
    return naive.replace(tzinfo=UTC)


def _ceil(moment: datetime, unit: timedelta) -> datetime:
    floor = _floor(moment, unit)
    return floor if floor == moment else floor + unit


def _floor(moment: datetime, unit: timedelta) -> datetime:
    hour = hour_of(moment)
    return hour.replace(hour=0) if unit == DAY else hour


def scope(
    principal: Principal,
    *,
    tenant_id: str | None = None,
    workflow_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Scope:
    """What a read covers: ``from`` rounds down and ``to`` up to whole hours (executions
    count in the hour they started); ``to`` before ``from`` is an empty range."""
    first = _floor(start, HOUR) if start is not None else None
    last = _ceil(end, HOUR) if end is not None else None
    if first is not None and last is not None and last < first:
        last = first
    return Scope(
        tenant_id=tenant_scope(principal, tenant_id),
        workflow_id=workflow_id or None,
        start=first,
        end=last,
    )


# --- reads --------------------------------------------------------------------------------


async def summary(session: AsyncSession, *, scope: Scope) -> dict[str, Any]:
    """Figures over ``scope``, with usage per model."""
    found = await collect(session, scope)
    figures = found.get((), Figures())
    models = [
        {
            "model": model,
            "calls": calls,
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "cost_usd": round(cost, 9),
        }
        for model, calls, tokens_in, tokens_out, cost in await repository.model_sums(session, scope)
        if calls
    ]
    return {**figures.to_dict(), "models": models}


async def workflows(
    session: AsyncSession, *, scope: Scope, query: ListQuery
) -> tuple[list[dict[str, Any]], int]:
    """One page of per-workflow figures, and how many workflows there are."""
    groups = repository.workflow_groups(scope).subquery()
    total = await repository.count_rows(session, select(groups))
    order = []
    for name, descending in query.sort:
        column = groups.c[name]
        order.append(column.desc() if descending else column.asc())
    stmt = (
        select(groups)
        .order_by(*order, groups.c.tenant_id, groups.c.workflow_id)
        .offset((query.page - 1) * query.limit)
        .limit(query.limit)
    )
    rows = (await session.execute(stmt)).all()
    if not rows:
        return [], total
    ids = tuple(sorted({row.workflow_id for row in rows}))
    narrowed = Scope(tenant_id=scope.tenant_id, workflow_ids=ids, start=scope.start, end=scope.end)
    found = await collect(session, narrowed, by=("tenant_id", "workflow_id"))
    items = []
    for row in rows:
        figures = found.get((row.tenant_id, row.workflow_id), Figures())
        items.append(
            {
                "id": row.workflow_id,
                "workflow_id": row.workflow_id,
                "tenant_id": row.tenant_id,
                **figures.to_dict(),
            }
        )
    return items, total


def series_range(
    interval: str, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """The whole intervals a series covers (the last day or 30 days by default)."""
    unit = DAY if interval == "day" else HOUR
    end = end or utcnow()
    start = start or end - _DEFAULT_SPAN[interval]
    first, last = _floor(start, unit), _ceil(end, unit)
    if last < first:
        last = first
    if (last - first) / unit > MAX_POINTS:
        raise InvalidRange(
            f"a series answers at most {MAX_POINTS} points: narrow 'from'..'to' or use a "
            "longer interval",
            errors=[{"loc": ["query", "from"], "msg": "range too long for the interval"}],
        )
    return first, last


def _point(metric: str, figures: Figures | None) -> float | None:
    if figures is None:
        return None if metric == "duration_p95" else 0
    if metric == "executions":
        return int(figures.sums["executions"])
    if metric == "succeeded":
        return int(figures.sums["succeeded"])
    if metric == "failures":
        return int(figures.sums["failed"])
    if metric == "cost_usd":
        return round(float(figures.sums["cost_usd"]), 9)
    return figures.durations()["p95"]


async def timeseries(
    session: AsyncSession, *, scope: Scope, metric: str, interval: str
) -> list[dict[str, Any]]:
    """One point per interval of ``scope`` (which must have a start and an end)."""
    assert scope.start is not None
    assert scope.end is not None
    unit = DAY if interval == "day" else HOUR

    def key_of(key: tuple[Any, ...]) -> Hashable:
        return _floor(key[0], unit)

    found = await collect(session, scope, by=("bucket_at",), key_of=key_of)
    points = []
    at = scope.start
    while at < scope.end:
        points.append({"at": isoformat(at), "value": _point(metric, found.get(at))})
        at += unit
    return points


REPORT_COLUMNS = (
    "day",
    "tenant_id",
    "workflow_id",
    "executions",
    "succeeded",
    "failed",
    "cancelled",
    "success_rate",
    "duration_p50_ms",
    "duration_p95_ms",
    "duration_p99_ms",
    "steps_total",
    "steps_failed",
    "input_tokens",
    "output_tokens",
    "cost_usd",
)


async def report(session: AsyncSession, *, scope: Scope) -> list[dict[str, Any]]:
    """One row per day and workflow with executions, oldest day first."""

    def key_of(key: tuple[Any, ...]) -> Hashable:
        return (_floor(key[0], DAY), key[1], key[2])

    found = await collect(
        session, scope, by=("bucket_at", "tenant_id", "workflow_id"), key_of=key_of
    )
    rows = []
    for key, figures in sorted(found.items(), key=lambda item: str(item[0])):
        day, tenant_id, workflow_id = cast(tuple[datetime, str, str], key)
        if not figures.sums["executions"]:
            continue
        durations = figures.durations()
        s = figures.sums
        rows.append(
            {
                "day": day.date().isoformat(),
                "tenant_id": tenant_id,
                "workflow_id": workflow_id,
                "executions": int(s["executions"]),
                "succeeded": int(s["succeeded"]),
                "failed": int(s["failed"]),
                "cancelled": int(s["cancelled"]),
                "success_rate": figures.success_rate,
                "duration_p50_ms": durations["p50"],
                "duration_p95_ms": durations["p95"],
                "duration_p99_ms": durations["p99"],
                "steps_total": int(s["steps_total"]),
                "steps_failed": int(s["steps_failed"]),
                "input_tokens": int(s["input_tokens"]),
                "output_tokens": int(s["output_tokens"]),
                "cost_usd": round(float(s["cost_usd"]), 9),
            }
        )
    return rows


# --- SLOs ---------------------------------------------------------------------------------


async def create_slo(
    session: AsyncSession,
    *,
    principal: Principal,
    data: AnalyticsSuccessRateSlo | AnalyticsDurationSlo,
) -> dict[str, Any]:
    """A new SLO of the caller's tenant, evaluated now (a breach from the start publishes)."""
    slo = AnalyticsSlo(
        tenant_id=principal.tenant_id,
        name=data.name,
        workflow_id=data.workflow_id,
        objective=data.objective,
        target=data.target,
        window=data.window,
        state="ok",
    )
    session.add(slo)
    await session.flush()
    now = utcnow()
    await slos.settle(session, slo, now=now)
    return slos.to_dict(slo, await slos.status_of(session, slo, now=now))


async def list_slos(
    session: AsyncSession, *, principal: Principal, tenant_id: str | None
) -> list[dict[str, Any]]:
    """The SLOs the caller sees, each with its figures now."""
    rows = (await session.execute(repository.slos_of(tenant_scope(principal, tenant_id)))).scalars()
    now = utcnow()
    return [slos.to_dict(slo, await slos.status_of(session, slo, now=now)) for slo in rows]


async def get_slo(session: AsyncSession, *, principal: Principal, slo_id: str) -> AnalyticsSlo:
    """An SLO the caller sees (a platform admin, any); 404 otherwise."""
    slo = await session.get(AnalyticsSlo, slo_id)
    if slo is None or (slo.tenant_id != principal.tenant_id and not principal.is_platform_admin):
        raise SloNotFound(f"SLO '{slo_id}' not found")
    return slo


async def slo_dict(session: AsyncSession, slo: AnalyticsSlo) -> dict[str, Any]:
    """``slo`` with its figures now."""
    return slos.to_dict(slo, await slos.status_of(session, slo, now=utcnow()))


async def delete_slo(session: AsyncSession, *, slo: AnalyticsSlo) -> None:
    """Forget an SLO."""
    await session.execute(delete(AnalyticsSlo).where(AnalyticsSlo.id == slo.id))
