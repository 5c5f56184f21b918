"""HTTP routes of flags: requests to service calls, nothing more."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel import audit
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.http.deps import CurrentPrincipal, Session
from orchestrion.kernel.http.etag import check_if_match, resource_response
from orchestrion.kernel.http.lists import ListPage, list_body, list_parameters, parse_list_query
from orchestrion.kernel.http.openapi import not_modified
from orchestrion.services.flags import repository, service
from orchestrion.services.flags.responses import problems
from orchestrion.services.flags.schemas import (
    Flag,
    FlagCreate,
    FlagEvaluation,
    FlagUpdate,
)

PREFIX = "/api/v1/flags"
router = APIRouter(prefix=PREFIX, tags=["flags"])

TenantId = Annotated[
    str | None,
    Query(
        max_length=36,
        description="The tenant whose flag this is (platform admins; default: the caller's).",
    ),
]


def _audit(
    request: Request, session: AsyncSession, principal: Principal, action: str, flag: Any
) -> None:
    audit.record_request(
        session,
        request,
        principal,
        action=action,
        resource_type="flag",
        resource_id=flag.key,
        tenant_id=flag.tenant_id,
        data={"enabled": flag.enabled, "rollout": flag.rollout, "version": flag.version},
    )


def _location(flag: Any) -> dict[str, str]:
    return {"Location": f"{PREFIX}/{flag.key}"}


@router.post(
    "",
    status_code=201,
    response_model=Flag,
    responses=problems(401, 403, 409, 422),
    summary="Create a flag",
)
async def create_flag(
    data: FlagCreate,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    tenant_id: TenantId = None,
) -> Response:
    """A boolean flag, or a multivariate one with `variants`; platform admins only."""
    service.require_manager(principal)
    tenant = service.tenant_of(principal, tenant_id)
    flag = await service.create_flag(session, principal=principal, tenant_id=tenant, data=data)
    _audit(request, session, principal, "flag.created", flag)
    return resource_response(
        request, service.to_dict(flag), status_code=201, headers=_location(flag)
    )


@router.get(
    "",
    response_model=ListPage[Flag],
    responses=problems(400, 401, 403),
    summary="List flags",
    openapi_extra=list_parameters(repository.FLAG_LIST),
)
async def list_flags(request: Request, session: Session, principal: CurrentPrincipal) -> Response:
    """The tenant's flags, by key; filter `key`; `tenant_id` (platform admins) picks
    another tenant."""
    principal.require(Permission.FLAGS_READ)
    query = parse_list_query(request, repository.FLAG_LIST)
    tenant = service.tenant_of(principal, query.filters.pop("tenant_id", None))
    page = await service.list_flags(session, tenant_id=tenant, query=query)
    items = [service.to_dict(flag) for flag in page.rows]
    return JSONResponse(list_body(request, items, query, page))


@router.get(
    "/{key}",
    response_model=Flag,
    responses={**problems(401, 403, 404), **not_modified()},
    summary="Get a flag",
)
async def get_flag(
    key: str,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    tenant_id: TenantId = None,
) -> Response:
    """One flag, with its ETag."""
    principal.require(Permission.FLAGS_READ)
    tenant = service.tenant_of(principal, tenant_id)
    flag = await service.get_flag(session, tenant_id=tenant, key=key)
    return resource_response(request, service.to_dict(flag))


@router.patch(
    "/{key}",
    response_model=Flag,
    responses=problems(401, 403, 404, 412, 422),
    summary="Change a flag",
)
async def update_flag(
    key: str,
    data: FlagUpdate,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    tenant_id: TenantId = None,
) -> Response:
    """The fields given (`variants` and `rules` whole); `enabled: false` is the kill
    switch, off for everyone at once; `If-Match` honoured. Platform admins only."""
    service.require_manager(principal)
    tenant = service.tenant_of(principal, tenant_id)
    flag = await service.get_flag(session, tenant_id=tenant, key=key)
    check_if_match(request, service.to_dict(flag))
    flag = await service.update_flag(session, flag=flag, data=data)
    _audit(request, session, principal, "flag.updated", flag)
    return resource_response(request, service.to_dict(flag))


@router.delete(
    "/{key}",
    status_code=204,
    responses=problems(401, 403, 404, 412),
    summary="Delete a flag",
)
async def delete_flag(
    key: str,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    tenant_id: TenantId = None,
) -> Response:
    """Delete it; evaluating it answers 404 from now on; `If-Match` honoured."""
    service.require_manager(principal)
    tenant = service.tenant_of(principal, tenant_id)
    flag = await service.get_flag(session, tenant_id=tenant, key=key)
    check_if_match(request, service.to_dict(flag))
    await service.delete_flag(session, flag=flag)
    _audit(request, session, principal, "flag.deleted", flag)
    return Response(status_code=204)


@router.get(
    "/{key}/evaluate",
    response_model=FlagEvaluation,
    responses=problems(401, 404),
    summary="Evaluate a flag for the caller",
)
async def evaluate_flag(key: str, session: Session, principal: CurrentPrincipal) -> Response:
    """The caller's answer from its tenant's flag: the same caller gets the same answer
    every time while the flag is unchanged (any authenticated caller, for itself)."""
    flag, outcome = await service.evaluate_flag(session, principal=principal, key=key)
    return JSONResponse(service.evaluation_to_dict(flag, outcome))
