"""HTTP routes of templates: requests to service calls, nothing more."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel import audit
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.http.deps import CurrentPrincipal, Db, Session
from orchestrion.kernel.http.etag import check_if_match, resource_response
from orchestrion.kernel.http.idempotency import HEADER, run_idempotent
from orchestrion.kernel.http.lists import ListPage, list_body, parse_list_query
from orchestrion.kernel.http.openapi import not_modified
from orchestrion.services.templates import repository, service, workflows
from orchestrion.services.templates.responses import problems
from orchestrion.services.templates.schemas import (
    CategoryList,
    InstantiatedWorkflow,
    InstantiateRequest,
    PublishRequest,
    Rating,
    RatingCreate,
    Template,
    TemplateCreate,
    TemplateUpdate,
    TemplateVersion,
)

router = APIRouter(prefix="/api/v1/templates", tags=["templates"])
_PREFIX = "/api/v1/templates"


def _audit(
    session: AsyncSession,
    request: Request,
    principal: Principal,
    action: str,
    template_id: str,
    **data: Any,
) -> None:
    audit.record_request(
        session,
        request,
        principal,
        action=action,
        resource_type="template",
        resource_id=template_id,
        data=data,
    )


@router.post(
    "",
    status_code=201,
    response_model=Template,
    responses=problems(400, 401, 403, 422),
    summary="Create a template",
)
async def create_template(
    data: TemplateCreate, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """A private template of the caller's tenant, version 1 (`Idempotency-Key` honoured)."""
    principal.require(Permission.TEMPLATES_WRITE)

    async def produce() -> tuple[int, Any]:
        template = await service.create_template(session, principal=principal, data=data)
        _audit(session, request, principal, "template.created", template.id)
        return 201, service.to_dict(template)

    response = await run_idempotent(
        session,
        request=request,
        scope=f"{principal.tenant_id}:{principal.subject}:POST:{_PREFIX}",
        payload=data.model_dump(mode="json"),
        produce=produce,
    )
    if response.status_code == 201:
        response.headers["Location"] = f"{_PREFIX}/{json.loads(bytes(response.body))['id']}"
    return response


@router.get(
    "",
    response_model=ListPage[Template],
    responses=problems(400, 401, 403),
    summary="List and search templates",
)
async def list_templates(
    request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Templates the caller sees (its own, its tenant's shared ones, every public one);
    filters `category`, `tag`, `visibility`, `name`; `q=` searches name and description;
    `sort=rating:desc` or `installs:desc` ranks the marketplace."""
    principal.require(Permission.TEMPLATES_READ)
    query = parse_list_query(request, repository.TEMPLATE_LIST)
    page = await service.list_templates(session, principal=principal, query=query)
    items = [service.to_dict(t) for t in page.rows]
    return JSONResponse(list_body(request, items, query, page))


@router.get(
    "/categories",
    response_model=CategoryList,
    responses=problems(401, 403),
    summary="Categories of the templates the caller sees",
)
async def list_categories(session: Session, principal: CurrentPrincipal) -> Response:
    """Every category with its count of templates the caller sees, by name."""
    principal.require(Permission.TEMPLATES_READ)
    return JSONResponse({"data": await service.categories(session, principal=principal)})


@router.get(
    "/{template_id}",
    response_model=Template,
    responses={**problems(401, 403, 404), **not_modified()},
    summary="Get a template",
)
async def get_template(
    template_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """One template, with its ETag."""
    principal.require(Permission.TEMPLATES_READ)
    template = await service.get_template(session, principal=principal, template_id=template_id)
    return resource_response(request, service.to_dict(template))


@router.put(
    "/{template_id}",
    response_model=Template,
    responses=problems(401, 403, 404, 412, 422),
    summary="Replace a template (a new version when its content changes)",
)
async def replace_template(
    template_id: str,
    data: TemplateUpdate,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> Response:
    """The whole template again; only its tenant may; `If-Match` honoured."""
    principal.require(Permission.TEMPLATES_WRITE)
    template = await service.get_template(session, principal=principal, template_id=template_id)
    service.require_owner(principal, template)
    check_if_match(request, service.to_dict(template))
    template = await service.update_template(
        session, principal=principal, template=template, data=data
    )
    _audit(session, request, principal, "template.updated", template.id)
    return resource_response(request, service.to_dict(template))


@router.delete(
    "/{template_id}",
    status_code=204,
    responses=problems(401, 403, 404, 412),
    summary="Delete a template",
)
async def delete_template(
    template_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Delete it with its versions and ratings; workflows made from it stay."""
    principal.require(Permission.TEMPLATES_WRITE)
    template = await service.get_template(session, principal=principal, template_id=template_id)
    service.require_owner(principal, template)
    check_if_match(request, service.to_dict(template))
    await service.delete_template(session, principal=principal, template=template)
    _audit(session, request, principal, "template.deleted", template_id)
    return Response(status_code=204)


@router.get(
    "/{template_id}/versions",
    response_model=ListPage[TemplateVersion],
    responses=problems(400, 401, 403, 404),
    summary="Versions of a template",
)
async def list_versions(
    template_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Every version's content, newest first by default."""
    principal.require(Permission.TEMPLATES_READ)
    await service.get_template(session, principal=principal, template_id=template_id)
    query = parse_list_query(request, repository.VERSION_LIST)
    page = await service.list_versions(session, template_id=template_id, query=query)
    items = [service.version_to_dict(v) for v in page.rows]
    return JSONResponse(list_body(request, items, query, page))


@router.post(
    "/{template_id}/publish",
    response_model=Template,
    responses=problems(401, 403, 404, 422),
    summary="Share a template with the tenant or every tenant",
)
async def publish_template(
    template_id: str,
    data: PublishRequest,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> Response:
    """`tenant`: every user of the owning tenant sees it; `public`: every tenant does."""
    principal.require(Permission.TEMPLATES_WRITE)
    template = await service.get_template(session, principal=principal, template_id=template_id)
    template = await service.publish(
        session, principal=principal, template=template, visibility=data.visibility
    )
    _audit(
        session, request, principal, "template.published", template.id, visibility=data.visibility
    )
    return resource_response(request, service.to_dict(template))


@router.post(
    "/{template_id}/ratings",
    status_code=201,
    response_model=Rating,
    responses=problems(401, 403, 404, 422),
    summary="Rate a template (one rating per user)",
)
async def rate_template(
    template_id: str, data: RatingCreate, session: Session, principal: CurrentPrincipal
) -> Response:
    """1 to 5 stars and a comment; the caller's earlier rating is replaced."""
    principal.require(Permission.TEMPLATES_WRITE)
    template = await service.get_template(session, principal=principal, template_id=template_id)
    body = await service.rate(session, principal=principal, template=template, data=data)
    return JSONResponse(body, status_code=201)


@router.post(
    "/{template_id}/instantiate",
    status_code=201,
    response_model=InstantiatedWorkflow,
    responses=problems(401, 403, 404, 409, 413, 422, 429, 502, 503),
    summary="Make a workflow of the caller's tenant from a template",
)
async def instantiate_template(
    template_id: str,
    data: InstantiateRequest,
    request: Request,
    database: Db,
    principal: CurrentPrincipal,
) -> Response:
    """Check the parameters against the template's schema (422 naming each field), put
    their values in the definition and create the workflow through the workflows
    service as the caller (who needs `workflows:write` too). `Idempotency-Key` is passed
    on: a replayed creation is not counted as another install."""
    principal.require(Permission.TEMPLATES_READ)
    # Read, then let the session go: on SQLite the workflows service writes to the same
    # file and must not wait behind a transaction held across the call.
    async with database.session() as session:
        template = await service.get_template(session, principal=principal, template_id=template_id)
        definition = service.instance_definition(template, data)
    headers = {"Idempotency-Key": request.headers[HEADER]} if HEADER in request.headers else {}
    workflow, replayed = await workflows.create_workflow(
        request.app.state.template_peers,
        principal=principal,
        secret=request.app.state.identity_secret,
        definition=definition,
        headers=headers,
    )
    if not replayed:
        async with database.session() as session:
            await service.count_install(session, template_id=template_id)
    return JSONResponse(
        workflow, status_code=201, headers={"Location": f"/api/v1/workflows/{workflow['id']}"}
    )
