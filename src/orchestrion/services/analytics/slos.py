"""Service level objectives: their current figure, whether they are met, their error
budget, and the events a change of state publishes.

- ``success_rate``: succeeded / finished executions over the window; met when at least
  ``target`` (0..1). The error budget is the ``1 - target`` share of finished executions
  allowed to fail (or be cancelled).
- ``duration_p95_ms``: the 95th percentile of durations of the executions finished over
  the window; met when at most ``target``. The error budget is the 5 % of executions
  allowed to be slower than ``target``.

``error_budget_remaining`` is the share of that allowance not yet spent, from 1 (none
spent) to 0 (spent or overspent); ``current`` and the budget are null while no execution
finished in the window, and an SLO without data is met.

The window slides: executions finished in the last hour, day or week (``finished_at``,
exact to the microsecond). ``duration_p95_ms`` over more than ``EXACT_MAX`` executions
comes from the duration sketch of the hours the window overlaps.

The projector evaluates the SLOs an execution counts in whenever a finished execution
changes, and stages ``analytics.slo_breached`` (or ``analytics.slo_recovered``) in the
same transaction when the state flips, through the outbox (``kernel/bus/outbox.py``):
a notification subscription to that event type hears it once per breach.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.bus.events import CloudEvent
from orchestrion.kernel.bus.outbox import stage
from orchestrion.kernel.ids import isoformat, utcnow
from orchestrion.services.analytics import repository
from orchestrion.services.analytics.digest import EXACT_MAX, count_above, percentiles
from orchestrion.services.analytics.models import AnalyticsSlo
from orchestrion.services.analytics.projection import hour_of

WINDOWS = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "7d": timedelta(days=7)}
OBJECTIVES = ("success_rate", "duration_p95_ms")
BREACHED = "analytics.slo_breached"
RECOVERED = "analytics.slo_recovered"
SOURCE = "orchestrion/analytics"
#: The share of executions a p95 objective lets be slower than its target.
P95_ALLOWANCE = 0.05


@dataclass(frozen=True)
class SloStatus:
    """An SLO's figures now."""

    current: float | None
    met: bool
    error_budget_remaining: float | None
    executions: int


def _budget(bad: int, allowed: float) -> float:
    if allowed <= 0:
        return 1.0 if bad == 0 else 0.0
    return round(max(0.0, 1.0 - bad / allowed), 6)


async def status_of(session: AsyncSession, slo: AnalyticsSlo, *, now: datetime) -> SloStatus:
    """``slo``'s current figure, whether it is met and its error budget left."""
    since = now - WINDOWS[slo.window]
    counts = await repository.finished_since(
        session, tenant_id=slo.tenant_id, workflow_id=slo.workflow_id, since=since
    )
    finished = sum(counts.values())
    if finished == 0:
        return SloStatus(current=None, met=True, error_budget_remaining=None, executions=0)
    if slo.objective == "success_rate":
        succeeded = counts.get("succeeded", 0)
        current = round(succeeded / finished, 6)
        budget = _budget(finished - succeeded, (1 - slo.target) * finished)
        return SloStatus(current, current >= slo.target, budget, finished)
    if finished <= EXACT_MAX:
        values = await repository.durations_since(
            session, tenant_id=slo.tenant_id, workflow_id=slo.workflow_id, since=since
        )
        p95 = percentiles(values=values, wanted=(95,))["p95"]
        slower = count_above(threshold=slo.target, values=values)
    else:
        scope = repository.Scope(
            tenant_id=slo.tenant_id, workflow_id=slo.workflow_id, start=hour_of(since)
        )
        bins: dict[int, int] = {}
        for _, key, count in await repository.duration_bins(session, scope):
            bins[key] = bins.get(key, 0) + count
        p95 = percentiles(bins=bins, wanted=(95,))["p95"]
        slower = count_above(threshold=slo.target, bins=bins)
    met = p95 is None or p95 <= slo.target
    return SloStatus(p95, met, _budget(slower, P95_ALLOWANCE * finished), finished)


def to_dict(slo: AnalyticsSlo, status: SloStatus) -> dict[str, Any]:
    """The API shape of an SLO with its figures."""
    return {
        "id": slo.id,
        "tenant_id": slo.tenant_id,
        "name": slo.name,
        "workflow_id": slo.workflow_id,
        "objective": slo.objective,
        "target": slo.target,
        "window": slo.window,
        "current": status.current,
        "met": status.met,
        "error_budget_remaining": status.error_budget_remaining,
        "executions": status.executions,
        "state": slo.state,
        "created_at": isoformat(slo.created_at),
        "updated_at": isoformat(slo.updated_at),
    }


async def evaluate(
    session: AsyncSession, *, tenant_id: str, workflow_id: str, now: datetime | None = None
) -> list[str]:
    """Re-evaluate the SLOs a workflow's executions count in; stage an event for each
    that changed state. The ids of those that did."""
    now = now or utcnow()
    flipped: list[str] = []
    for slo in await repository.slos_for(session, tenant_id=tenant_id, workflow_id=workflow_id):
        if await settle(session, slo, now=now):
            flipped.append(slo.id)
    return flipped


async def settle(session: AsyncSession, slo: AnalyticsSlo, *, now: datetime) -> bool:
    """Record ``slo``'s state now; whether it changed (and an event was staged)."""
    status = await status_of(session, slo, now=now)
    state = "ok" if status.met else "breached"
    if state == slo.state:
        return False
    slo.state = state
    slo.state_changed_at = now
    kind = BREACHED if state == "breached" else RECOVERED
    data = {**to_dict(slo, status), "at": isoformat(now)}
    stage(
        session,
        topic=kind,
        event_=CloudEvent(source=SOURCE, type=kind, subject=f"slos/{slo.id}", data=data),
    )
    return True
