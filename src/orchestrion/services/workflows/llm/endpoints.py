"""HTTP routes of LLM providers, budgets and usage."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.http.deps import CurrentPrincipal, Session
from orchestrion.services.workflows.llm import service
from orchestrion.services.workflows.llm.schemas import (
    BudgetCreate,
    BudgetRead,
    IsoTime,
    ProviderCreate,
    ProviderList,
    ProviderRead,
    UsageReport,
)
from orchestrion.services.workflows.responses import Items, problems

router = APIRouter(tags=["llm"])


@router.get(
    "/api/v1/llm/providers",
    response_model=ProviderList,
    responses=problems(401, 403),
    summary="LLM providers",
)
async def list_providers(
    request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """The tenant's providers (keys are never shown) and the platform's names and kinds."""
    principal.require(Permission.LLM_READ)
    rows = await service.list_providers(session, tenant_id=principal.tenant_id)
    platform = request.app.state.runtime.llm.platform
    return JSONResponse(
        {
            "data": [service.provider_to_dict(row) for row in rows],
            "platform": service.platform_to_list(platform),
        }
    )


@router.post(
    "/api/v1/llm/providers",
    status_code=201,
    response_model=ProviderRead,
    responses=problems(401, 403, 409, 422),
    summary="Add an LLM provider",
)
async def create_provider(
    body: ProviderCreate, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """`api_key` is stored encrypted and never returned; `base_url` may not be private."""
    principal.require(Permission.LLM_WRITE)
    provider = await service.create_provider(
        session,
        fernet=request.app.state.llm_fernet,
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        body=body,
    )
    return JSONResponse(service.provider_to_dict(provider), status_code=201)


@router.get(
    "/api/v1/llm/providers/{provider_id}",
    response_model=ProviderRead,
    responses=problems(401, 403, 404),
    summary="Get an LLM provider",
)
async def get_provider(provider_id: str, session: Session, principal: CurrentPrincipal) -> Response:
    """One provider, by id or name."""
    principal.require(Permission.LLM_READ)
    provider = await service.get_provider(
        session, tenant_id=principal.tenant_id, provider_id=provider_id
    )
    return JSONResponse(service.provider_to_dict(provider))


@router.delete(
    "/api/v1/llm/providers/{provider_id}",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404),
    summary="Delete an LLM provider",
)
async def delete_provider(
    provider_id: str, session: Session, principal: CurrentPrincipal
) -> Response:
    """Steps naming it fail from now on (or use the platform's provider of that name)."""
    principal.require(Permission.LLM_WRITE)
    await service.delete_provider(session, tenant_id=principal.tenant_id, provider_id=provider_id)
    return Response(status_code=204)


@router.post(
    "/api/v1/budgets",
    status_code=201,
    response_model=BudgetRead,
    responses=problems(401, 403, 422),
    summary="Add a budget",
)
async def create_budget(
    body: BudgetCreate, session: Session, principal: CurrentPrincipal
) -> Response:
    """A run that would cross it fails with a problem naming it."""
    principal.require(Permission.LLM_WRITE)
    budget = await service.create_budget(
        session, tenant_id=principal.tenant_id, user_id=principal.user_id, body=body
    )
    return JSONResponse(service.new_budget_to_dict(budget), status_code=201)


@router.get(
    "/api/v1/budgets",
    response_model=Items[BudgetRead],
    responses=problems(401, 403),
    summary="Budgets",
)
async def list_budgets(session: Session, principal: CurrentPrincipal) -> Response:
    """Every budget of the tenant, with `spent_usd` in its current period."""
    principal.require(Permission.LLM_READ)
    budgets = await service.list_budgets(session, tenant_id=principal.tenant_id)
    return JSONResponse(
        {"data": [await service.budget_with_spent(session, budget=b) for b in budgets]}
    )


@router.get(
    "/api/v1/budgets/{budget_id}",
    response_model=BudgetRead,
    responses=problems(401, 403, 404),
    summary="Get a budget",
)
async def get_budget(budget_id: str, session: Session, principal: CurrentPrincipal) -> Response:
    """One budget with `spent_usd`."""
    principal.require(Permission.LLM_READ)
    budget = await service.get_budget(session, tenant_id=principal.tenant_id, budget_id=budget_id)
    return JSONResponse(await service.budget_with_spent(session, budget=budget))


@router.delete(
    "/api/v1/budgets/{budget_id}",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404),
    summary="Delete a budget",
)
async def delete_budget(budget_id: str, session: Session, principal: CurrentPrincipal) -> Response:
    """No longer enforced."""
    principal.require(Permission.LLM_WRITE)
    await service.delete_budget(session, tenant_id=principal.tenant_id, budget_id=budget_id)
    return Response(status_code=204)


@router.get(
    "/api/v1/usage",
    response_model=UsageReport,
    responses=problems(400, 401, 403, 422),
    summary="LLM usage",
)
async def get_usage(
    session: Session,
    principal: CurrentPrincipal,
    group_by: str = Query(
        default="model",
        description="`model`, `workflow` or `day`",
        json_schema_extra={"enum": ["model", "workflow", "day"]},
    ),
    since: IsoTime | None = Query(
        default=None, alias="from", description="ISO date/time, inclusive"
    ),
    until: IsoTime | None = Query(default=None, alias="to", description="ISO date/time, exclusive"),
    workflow_id: str | None = None,
) -> Response:
    """Tokens and cost of the tenant's LLM steps, grouped, with the total."""
    principal.require(Permission.LLM_READ)
    body = await service.usage(
        session,
        tenant_id=principal.tenant_id,
        group_by=group_by,
        since=since,
        until=until,
        workflow_id=workflow_id,
    )
    return JSONResponse(body)
