"""HTTP routes of the audit trail: ``/api/v1/audit``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.http.deps import Db, get_session, require
from orchestrion.kernel.http.lists import (
    ListPage,
    fetch_page,
    list_body,
    list_parameters,
    parse_list_query,
)
from orchestrion.kernel.http.openapi import problems
from orchestrion.services.auth.audit import repository, service
from orchestrion.services.auth.audit.schemas import AuditLine, AuditVerification

router = APIRouter(tags=["audit"])
PREFIX = "/api/v1/audit"
Auditor = Annotated[Principal, Depends(require(Permission.AUDIT_READ))]
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
_FILTER_DOC = {
    "actor": "Lines of one user or API key id.",
    "action": "Lines of one action (`workflow.created`).",
    "resource": "`<type>` or `<type>/<id>` (`workflow/0190…`).",
    "service": "Lines recorded by one service.",
    "request_id": "Lines of one request.",
}


@router.get(
    PREFIX,
    response_model=ListPage[AuditLine],
    openapi_extra=list_parameters(repository.TRAIL_LIST),
    summary="The audit trail",
    responses=problems(400, 401, 403),
)
async def list_audit(request: Request, session: Session, principal: Auditor) -> Response:
    """Who did what, when and from where, across every service: the caller's tenant
    (every tenant for platform admins). Filters: `actor`, `action`, `resource`,
    `service`, `request_id`."""
    query = parse_list_query(request, repository.TRAIL_LIST)
    page = await fetch_page(
        session,
        repository.trail_in(service.scope_of(principal)),
        repository.TRAIL_LIST,
        query,
    )
    return JSONResponse(
        list_body(request, [service.line_to_dict(line) for line in page.rows], query, page)
    )


@router.get(
    f"{PREFIX}/export",
    summary="Export the audit trail (JSON or CSV, streamed)",
    response_model=list[AuditLine],
    responses={
        200: {
            "description": "The lines, oldest first: a JSON array of audit lines, or CSV "
            "with a header row.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **problems(400, 401, 403),
    },
)
async def export_audit(
    request: Request,
    database: Db,
    principal: Auditor,
    format: Annotated[
        Literal["json", "csv"], Query(description="`json` (default) or `csv`.")
    ] = "json",
    actor: Annotated[str | None, Query(description=_FILTER_DOC["actor"])] = None,
    action: Annotated[str | None, Query(description=_FILTER_DOC["action"])] = None,
    resource: Annotated[str | None, Query(description=_FILTER_DOC["resource"])] = None,
    service_: Annotated[
        str | None, Query(alias="service", description=_FILTER_DOC["service"])
    ] = None,
    request_id: Annotated[str | None, Query(description=_FILTER_DOC["request_id"])] = None,
) -> Response:
    """Every line the caller may read that matches the filters, streamed."""
    filters = service.export_filters(dict(request.query_params))
    scope = service.scope_of(principal)
    if format == "csv":
        return StreamingResponse(
            service.export_csv(database, tenant_id=scope, filters=filters),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )
    return StreamingResponse(
        service.export_json(database, tenant_id=scope, filters=filters),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="audit.json"'},
    )


@router.get(
    f"{PREFIX}/verify",
    response_model=AuditVerification,
    summary="Verify the audit trail's hash chains",
    responses=problems(401, 403),
)
async def verify_audit(
    database: Db,
    principal: Auditor,
    tenant_id: Annotated[
        str | None,
        Query(max_length=36, description="Platform admins: one tenant's chain (default: all)."),
    ] = None,
) -> Response:
    """Recompute each line's hash from the chain's anchor; `first_broken` names the first
    line that was changed, removed or inserted."""
    scope = service.scope_of(principal, tenant_id)
    return JSONResponse(await service.verify(database, tenant_id=scope))
