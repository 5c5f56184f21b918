"""LLM providers of a tenant, budgets and usage: the workflows service's side of LLM steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine import BudgetExceeded, ProviderConfig
from orchestrion.kernel.errors import BadRequest, Conflict
from orchestrion.kernel.ids import isoformat, utcnow
from orchestrion.services.workflows.errors import (
    BudgetExceededProblem,
    BudgetNotFound,
    LlmProviderNotFound,
)
from orchestrion.services.workflows.llm import metrics, repository
from orchestrion.services.workflows.llm.models import LlmBudget, LlmProvider, LlmReservation
from orchestrion.services.workflows.llm.schemas import BudgetCreate, ProviderCreate

GROUPS = ("model", "workflow", "day")


# --- providers ---------------------------------------------------------------------


def provider_to_dict(provider: LlmProvider) -> dict[str, Any]:
    """The public shape: never the key, only whether there is one."""
    return {
        "id": provider.id,
        "name": provider.name,
        "kind": provider.kind,
        "base_url": provider.base_url,
        "has_api_key": provider.api_key is not None,
        "created_at": isoformat(provider.created_at),
        "updated_at": isoformat(provider.updated_at),
    }


def platform_to_list(platform: Mapping[str, ProviderConfig]) -> list[dict[str, Any]]:
    """The platform's providers as tenants see them: names and kinds, by name."""
    return [{"name": name, "kind": p.kind} for name, p in sorted(platform.items())]


async def create_provider(
    session: AsyncSession,
    *,
    fernet: Fernet,
    tenant_id: str,
    user_id: str | None,
    body: ProviderCreate,
) -> LlmProvider:
    """Add a provider (409 when the tenant has one by that name)."""
    if await repository.provider_named(session, tenant_id=tenant_id, name=body.name):
        raise Conflict(f"an LLM provider named {body.name!r} exists; delete it first")
    key = body.api_key.get_secret_value() if body.api_key else None
    provider = LlmProvider(
        tenant_id=tenant_id,
        name=body.name,
        kind=body.kind,
        base_url=body.base_url,
        api_key=fernet.encrypt(key.encode()).decode() if key else None,
        created_by=user_id,
    )
    session.add(provider)
    await session.flush()
    return provider


async def list_providers(session: AsyncSession, *, tenant_id: str) -> list[LlmProvider]:
    """The tenant's providers by name."""
    return await repository.providers_of(session, tenant_id=tenant_id)


async def get_provider(session: AsyncSession, *, tenant_id: str, provider_id: str) -> LlmProvider:
    """One of the tenant's providers, by id or name (404 otherwise)."""
    provider = await repository.find_provider(session, tenant_id=tenant_id, id_or_name=provider_id)
    if provider is None:
        raise LlmProviderNotFound(f"LLM provider '{provider_id}' not found")
    return provider


async def delete_provider(session: AsyncSession, *, tenant_id: str, provider_id: str) -> None:
    """Remove one of the tenant's providers, by id or name."""
    provider = await get_provider(session, tenant_id=tenant_id, provider_id=provider_id)
    await session.delete(provider)


def reveal(fernet: Fernet, provider: LlmProvider) -> str | None:
    """The stored key in clear, for a call (None when unreadable: another secret key)."""
    if provider.api_key is None:
        return None
    try:
        return fernet.decrypt(provider.api_key.encode()).decode()
    except InvalidToken:
        return None


# --- budgets -----------------------------------------------------------------------


def period_start(period: str | None, now: datetime | None = None) -> datetime | None:
    """Start (UTC) of the current ``day`` or ``month``; None for all time."""
    now = now or utcnow()
    if period == "day":
        return datetime(now.year, now.month, now.day, tzinfo=UTC)
    if period == "month":
        return datetime(now.year, now.month, 1, tzinfo=UTC)
    return None


async def spent(
    session: AsyncSession, budget: LlmBudget, *, root_execution_id: str | None = None
) -> float:
    """USD counted against ``budget`` (for an execution budget: that execution tree's)."""
    if budget.scope == "execution":
        if root_execution_id is None:
            return 0.0
        return await repository.cost(
            session, tenant_id=budget.tenant_id, root_execution_id=root_execution_id
        )
    return await repository.cost(
        session,
        tenant_id=budget.tenant_id,
        workflow_id=budget.workflow_id,
        since=period_start(budget.period),
    )


def budget_to_dict(budget: LlmBudget, spent_usd: float | None = None) -> dict[str, Any]:
    """The public shape, with what it counts so far (not for execution budgets)."""
    body: dict[str, Any] = {
        "id": budget.id,
        "name": budget.name,
        "scope": budget.scope,
        "workflow_id": budget.workflow_id,
        "period": budget.period,
        "limit_usd": budget.limit_usd,
        "created_at": isoformat(budget.created_at),
    }
    if spent_usd is not None:
        body["spent_usd"] = round(spent_usd, 9)
    return body


async def create_budget(
    session: AsyncSession, *, tenant_id: str, user_id: str | None, body: BudgetCreate
) -> LlmBudget:
    """Add a budget."""
    budget = LlmBudget(tenant_id=tenant_id, created_by=user_id, **body.model_dump())
    session.add(budget)
    await session.flush()
    return budget


def new_budget_to_dict(budget: LlmBudget) -> dict[str, Any]:
    """The public shape of a budget just created (nothing counted yet)."""
    return budget_to_dict(budget, None if budget.scope == "execution" else 0.0)


async def budget_with_spent(session: AsyncSession, *, budget: LlmBudget) -> dict[str, Any]:
    """The public shape with ``spent_usd`` in the current period (none per execution)."""
    used = None if budget.scope == "execution" else await spent(session, budget)
    return budget_to_dict(budget, used)


async def list_budgets(session: AsyncSession, *, tenant_id: str) -> list[LlmBudget]:
    """The tenant's budgets, oldest first."""
    return await repository.budgets_of(session, tenant_id=tenant_id)


async def get_budget(session: AsyncSession, *, tenant_id: str, budget_id: str) -> LlmBudget:
    """One of the tenant's budgets (404 otherwise)."""
    budget = await repository.get_budget(session, budget_id=budget_id)
    if budget is None or budget.tenant_id != tenant_id:
        raise BudgetNotFound(f"budget '{budget_id}' not found")
    return budget


async def delete_budget(session: AsyncSession, *, tenant_id: str, budget_id: str) -> None:
    """Stop enforcing one of the tenant's budgets."""
    budget = await get_budget(session, tenant_id=tenant_id, budget_id=budget_id)
    await session.delete(budget)


def budget_problem(budget: LlmBudget, spent_usd: float, estimate_usd: float) -> dict[str, Any]:
    """The RFC 9457 problem an execution fails with, naming the budget."""
    label = budget.name or budget.id
    where = f" for workflow {budget.workflow_id}" if budget.workflow_id else ""
    per = f" per {budget.period}" if budget.period else ""
    error = BudgetExceededProblem(
        f"budget '{label}' ({budget.scope}{where}, {budget.limit_usd:g} USD{per}) would be "
        f"exceeded: {spent_usd:.6f} USD spent, the next call may cost {estimate_usd:.6f} USD"
    )
    return {
        "type": error.type_uri,
        "title": error.default_title(),
        "status": error.status_code,
        "detail": error.detail,
        "budget_id": budget.id,
        "budget_name": budget.name,
        "limit_usd": budget.limit_usd,
        "spent_usd": round(spent_usd, 9),
    }


def _applies(budget: LlmBudget, workflow_id: str) -> bool:
    return budget.scope == "tenant" or budget.workflow_id in (None, workflow_id)


async def counted(
    session: AsyncSession, budget: LlmBudget, *, root_execution_id: str | None, now: datetime
) -> float:
    """USD counted against ``budget``: spent (the ledger) plus reserved by calls in flight."""
    used = await spent(session, budget, root_execution_id=root_execution_id)
    if budget.scope == "execution":
        if root_execution_id is None:
            return used
        return used + await repository.reserved(
            session, tenant_id=budget.tenant_id, now=now, root_execution_id=root_execution_id
        )
    return used + await repository.reserved(
        session,
        tenant_id=budget.tenant_id,
        now=now,
        workflow_id=budget.workflow_id,
        since=period_start(budget.period),
    )


@dataclass(frozen=True)
class CallKey:
    """Which model call a reservation is for: the ledger's key of its attempt."""

    tenant_id: str
    workflow_id: str
    root_execution_id: str
    execution_id: str
    step_id: str
    iteration: int
    attempt: int


async def reserve(
    session: AsyncSession, *, call: CallKey, estimate_usd: float, hold_seconds: float
) -> str | None:
    """Set ``estimate_usd`` aside for a call, or raise BudgetExceeded; the reservation's id
    (None: no budget applies, nothing to reserve).

    The budgets' rows stay locked until the caller commits, so reservations made
    concurrently (any process) are counted one after the other: together they never
    pass a budget by more than the difference between estimates and real costs.
    """
    now = utcnow()
    budgets = [
        b
        for b in await repository.lock_budgets(session, tenant_id=call.tenant_id)
        if _applies(b, call.workflow_id)
    ]
    if not budgets:
        return None
    await repository.drop_expired_reservations(session, tenant_id=call.tenant_id, now=now)
    for budget in budgets:
        used = await counted(session, budget, root_execution_id=call.root_execution_id, now=now)
        ratio = used / budget.limit_usd if budget.limit_usd > 0 else 1.0
        metrics.BUDGET_USED.labels(budget.id, budget.scope).set(ratio)
        if used >= budget.limit_usd or used + estimate_usd > budget.limit_usd:
            metrics.BUDGET_EXCEEDED.labels(budget.scope).inc()
            raise BudgetExceeded(budget_problem(budget, used, estimate_usd))
    reservation = LlmReservation(
        tenant_id=call.tenant_id,
        workflow_id=call.workflow_id,
        root_execution_id=call.root_execution_id,
        execution_id=call.execution_id,
        step_id=call.step_id,
        iteration=call.iteration,
        attempt=call.attempt,
        amount_usd=estimate_usd,
        created_at=now,
        expires_at=now + timedelta(seconds=hold_seconds),
    )
    session.add(reservation)
    await session.flush()
    return reservation.id


async def settle(
    session: AsyncSession, *, reservation_id: str, cost_usd: float, hold_seconds: float
) -> None:
    """The call ended: its real cost stays reserved until the ledger holds its attempt."""
    now = utcnow()
    await repository.settle_reservation(
        session,
        reservation_id=reservation_id,
        amount_usd=cost_usd,
        now=now,
        until=now + timedelta(seconds=hold_seconds),
    )


async def release(session: AsyncSession, *, reservation_id: str) -> None:
    """The call failed: nothing stays reserved."""
    await repository.delete_reservation(session, reservation_id=reservation_id)


# --- usage -------------------------------------------------------------------------


def _parse_time(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"'{name}' must be an ISO 8601 date or time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def usage(
    session: AsyncSession,
    *,
    tenant_id: str,
    group_by: str,
    since: str | None = None,
    until: str | None = None,
    workflow_id: str | None = None,
) -> dict[str, Any]:
    """Tokens and cost grouped by model, workflow or UTC day, with the total."""
    if group_by not in GROUPS:
        raise BadRequest(
            f"group_by must be one of {', '.join(GROUPS)}",
            errors=[{"loc": ["query", "group_by"], "msg": "unknown grouping"}],
        )
    start, end = _parse_time(since, "from"), _parse_time(until, "to")
    rows = await repository.usage_groups(
        session,
        tenant_id=tenant_id,
        group_by=group_by,
        start=start,
        end=end,
        workflow_id=workflow_id,
    )
    data = [_row(group_by, row) for row in rows]
    return {
        "group_by": group_by,
        "data": data,
        "total": {
            "input_tokens": sum(d["input_tokens"] for d in data),
            "output_tokens": sum(d["output_tokens"] for d in data),
            "cost_usd": round(sum(d["cost_usd"] for d in data), 9),
            "attempts": sum(d["attempts"] for d in data),
        },
    }


def _row(group_by: str, row: Sequence[Any]) -> dict[str, Any]:
    key = row[0]
    if group_by == "day":
        key = str(key)[:10]
    name = "workflow_id" if group_by == "workflow" else group_by
    return {
        name: key,
        "input_tokens": int(row[1] or 0),
        "output_tokens": int(row[2] or 0),
        "cost_usd": round(float(row[3] or 0.0), 9),
        "attempts": int(row[4] or 0),
    }
