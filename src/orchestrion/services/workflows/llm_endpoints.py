"""HTTP routes of LLM providers, budgets and usage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.http.deps import CurrentPrincipal, Session
from orchestrion.services.workflows import llm_service
from orchestrion.services.workflows.llm_backend import platform_llm
from orchestrion.services.workflows.llm_schemas import BudgetCreate, ProviderCreate

router = APIRouter(tags=["llm"])


@router.get("/api/v1/llm/providers", summary="LLM providers")
async def list_providers(
    request: Request, session: Session, principal: CurrentPrincipal
) -> dict[str, Any]:
    """The tenant's providers (keys are never shown) and the platform's names and kinds."""
    principal.require(Permission.LLM_READ)
    rows = await llm_service.list_providers(session, principal.tenant_id)
    platform = platform_llm(request.app.state.engine).platform
    return {
        "data": [llm_service.provider_to_dict(row) for row in rows],
        "platform": [{"name": name, "kind": p.kind} for name, p in sorted(platform.items())],
    }


@router.post("/api/v1/llm/providers", status_code=201, summary="Add an LLM provider")
async def create_provider(
    body: ProviderCreate, request: Request, session: Session, principal: CurrentPrincipal
) -> dict[str, Any]:
    """`api_key` is stored encrypted and never returned; `base_url` may not be private."""
    principal.require(Permission.LLM_WRITE)
    provider = await llm_service.create_provider(
        session,
        request.app.state.llm_fernet,
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        body=body,
    )
    return llm_service.provider_to_dict(provider)


@router.get("/api/v1/llm/providers/{provider_id}", summary="Get an LLM provider")
async def get_provider(
    provider_id: str, session: Session, principal: CurrentPrincipal
) -> dict[str, Any]:
    """One provider, by id or name."""
    principal.require(Permission.LLM_READ)
    provider = await llm_service.get_provider(session, principal.tenant_id, provider_id)
    return llm_service.provider_to_dict(provider)


@router.delete(
    "/api/v1/llm/providers/{provider_id}", status_code=204, summary="Delete an LLM provider"
)
async def delete_provider(
    provider_id: str, session: Session, principal: CurrentPrincipal
) -> Response:
    """Steps naming it fail from now on (or use the platform's provider of that name)."""
    principal.require(Permission.LLM_WRITE)
    provider = await llm_service.get_provider(session, principal.tenant_id, provider_id)
    await session.delete(provider)
    return Response(status_code=204)


@router.post("/api/v1/budgets", status_code=201, summary="Add a budget")
async def create_budget(
    body: BudgetCreate, session: Session, principal: CurrentPrincipal
) -> dict[str, Any]:
    """A run that would cross it fails with a problem naming it."""
    principal.require(Permission.LLM_WRITE)
    budget = await llm_service.create_budget(
        session, tenant_id=principal.tenant_id, user_id=principal.user_id, body=body
    )
    return llm_service.budget_to_dict(budget, None if budget.scope == "execution" else 0.0)


async def _with_spent(session: Session, budget: Any) -> dict[str, Any]:
    used = None if budget.scope == "execution" else await llm_service.spent(session, budget)
    return llm_service.budget_to_dict(budget, used)


@router.get("/api/v1/budgets", summary="Budgets")
async def list_budgets(session: Session, principal: CurrentPrincipal) -> dict[str, Any]:
    """Every budget of the tenant, with `spent_usd` in its current period."""
    principal.require(Permission.LLM_READ)
    budgets = await llm_service.list_budgets(session, principal.tenant_id)
    return {"data": [await _with_spent(session, b) for b in budgets]}


@router.get("/api/v1/budgets/{budget_id}", summary="Get a budget")
async def get_budget(
    budget_id: str, session: Session, principal: CurrentPrincipal
) -> dict[str, Any]:
    """One budget with `spent_usd`."""
    principal.require(Permission.LLM_READ)
    budget = await llm_service.get_budget(session, principal.tenant_id, budget_id)
    return await _with_spent(session, budget)


@router.delete("/api/v1/budgets/{budget_id}", status_code=204, summary="Delete a budget")
async def delete_budget(budget_id: str, session: Session, principal: CurrentPrincipal) -> Response:
    """No longer enforced."""
    principal.require(Permission.LLM_WRITE)
    budget = await llm_service.get_budget(session, principal.tenant_id, budget_id)
    await session.delete(budget)
    return Response(status_code=204)


@router.get("/api/v1/usage", summary="LLM usage")
async def get_usage(
    session: Session,
    principal: CurrentPrincipal,
    group_by: str = Query(default="model", description="`model`, `workflow` or `day`"),
    since: str | None = Query(default=None, alias="from", description="ISO date/time, inclusive"),
    until: str | None = Query(default=None, alias="to", description="ISO date/time, exclusive"),
    workflow_id: str | None = None,
) -> JSONResponse:
    """Tokens and cost of the tenant's LLM steps, grouped, with the total."""
    principal.require(Permission.LLM_READ)
    body = await llm_service.usage(
        session,
        tenant_id=principal.tenant_id,
        group_by=group_by,
        since=since,
        until=until,
        workflow_id=workflow_id,
    )
    return JSONResponse(body)
