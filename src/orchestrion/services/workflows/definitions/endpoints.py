"""HTTP routes of workflows and their versions: they map requests to service calls."""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from orchestrion.kernel import audit
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.http.deps import CurrentPrincipal, Session
from orchestrion.kernel.http.etag import check_if_match, resource_response
from orchestrion.kernel.http.idempotency import run_idempotent
from orchestrion.kernel.http.lists import ListPage, list_body, list_parameters, parse_list_query
from orchestrion.services.workflows.definitions import service
from orchestrion.services.workflows.definitions.parsing import ParseLimits, load_json, load_yaml
from orchestrion.services.workflows.definitions.schemas import (
    DEFINITION_EXAMPLE,
    StepTypeRead,
    WorkflowRead,
    WorkflowVersionRead,
)
from orchestrion.services.workflows.errors import UnreadableBody
from orchestrion.services.workflows.responses import COMPONENTS, not_modified, problems

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
_DEFINITION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": COMPONENTS.format(model="WorkflowDefinition")},
                "examples": {"double-then-add": {"value": DEFINITION_EXAMPLE}},
            },
            # The same object, written as YAML.
            "application/yaml": {"schema": {"$ref": COMPONENTS.format(model="WorkflowDefinition")}},
        },
    }
}


def _audit(
    session: Session,
    request: Request,
    principal: Principal,
    action: str,
    workflow_id: str,
    name: str,
) -> None:
    audit.record_request(
        session,
        request,
        principal,
        action=action,
        resource_type="workflow",
        resource_id=workflow_id,
        data={"name": name},
    )


async def _read_object(request: Request) -> dict[str, Any]:
    """The body as a mapping, from JSON or (by Content-Type) YAML."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    limits = ParseLimits.from_settings(getattr(request.app.state, "limits", None))
    try:
        load = load_yaml if content_type in _YAML_TYPES else load_json
        data = load(raw, limits)
    except (ValueError, yaml.YAMLError) as exc:
        raise UnreadableBody(
            f"the body is not valid {'YAML' if content_type in _YAML_TYPES else 'JSON'}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise UnreadableBody("the body must be an object")
    return data


def _can_write(principal: CurrentPrincipal) -> None:
    principal.require(Permission.WORKFLOWS_WRITE)


@router.get(
    "/step-types",
    response_model=list[StepTypeRead],
    responses=problems(401),
    summary="Step types a definition may use",
)
async def list_step_types(principal: CurrentPrincipal) -> Response:
    """Every registered step type, by name, with the JSON Schema of its `with`.

    Any authenticated caller may read it: it is the platform's, not a tenant's.
    """
    return JSONResponse(service.step_types())


@router.post(
    "",
    status_code=201,
    response_model=WorkflowRead,
    responses=problems(400, 401, 403, 409, 422),
    openapi_extra=_DEFINITION_BODY,
    summary="Create a workflow",
)
async def create_workflow(
    request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Validate and store a definition as version 1 (``Idempotency-Key`` honoured)."""
    _can_write(principal)
    raw = await _read_object(request)

    async def produce() -> tuple[int, Any]:
        definition = service.parse_definition(raw)
        workflow = await service.create_workflow(
            session, principal=principal, definition=definition
        )
        _audit(session, request, principal, "workflow.created", workflow.id, workflow.name)
        return 201, service.to_dict(workflow)

    response = await run_idempotent(
        session,
        request=request,
        scope=f"{principal.tenant_id}:{principal.subject}:POST:/api/v1/workflows",
        payload=raw,
        produce=produce,
    )
    body = json.loads(bytes(response.body))
    response.headers["Location"] = f"/api/v1/workflows/{body['id']}"
    return response


@router.get(
    "",
    response_model=ListPage[WorkflowRead],
    openapi_extra=list_parameters(service.WORKFLOW_LIST),
    responses=problems(400, 401, 403),
    summary="List workflows",
)
async def list_workflows(
    request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Workflows of the caller's tenant; filters `status`, `tag`, `name`."""
    principal.require(Permission.WORKFLOWS_READ)
    query = parse_list_query(request, service.WORKFLOW_LIST)
    page = await service.list_workflows(session, principal=principal, query=query)
    return JSONResponse(list_body(request, [service.to_dict(w) for w in page.rows], query, page))


@router.get(
    "/{workflow_id}",
    response_model=WorkflowRead,
    responses={**not_modified(), **problems(401, 403, 404)},
    summary="Get a workflow",
)
async def get_workflow(
    workflow_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """One workflow, with its ETag."""
    principal.require(Permission.WORKFLOWS_READ)
    workflow = await service.get_workflow(session, principal=principal, workflow_id=workflow_id)
    return resource_response(request, service.to_dict(workflow))


@router.put(
    "/{workflow_id}",
    response_model=WorkflowRead,
    responses=problems(400, 401, 403, 404, 412, 422),
    openapi_extra=_DEFINITION_BODY,
    summary="Replace a workflow",
)
async def replace_workflow(
    workflow_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """A full definition; a changed definition makes a new version (`If-Match` honoured)."""
    _can_write(principal)
    workflow = await service.get_workflow(session, principal=principal, workflow_id=workflow_id)
    check_if_match(request, service.to_dict(workflow))
    definition = service.parse_definition(await _read_object(request))
    workflow = await service.update_workflow(
        session, principal=principal, workflow=workflow, definition=definition
    )
    _audit(session, request, principal, "workflow.updated", workflow.id, workflow.name)
    return resource_response(request, service.to_dict(workflow))


@router.patch(
    "/{workflow_id}",
    response_model=WorkflowRead,
    responses=problems(400, 401, 403, 404, 412, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": COMPONENTS.format(model="WorkflowDefinitionPatch")},
                    "examples": {"archive": {"value": {"status": "archived"}}},
                }
            },
        }
    },
    summary="Change part of a workflow",
)
async def patch_workflow(
    workflow_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Top-level keys replace the current ones (e.g. `{"status": "archived"}`)."""
    _can_write(principal)
    workflow = await service.get_workflow(session, principal=principal, workflow_id=workflow_id)
    check_if_match(request, service.to_dict(workflow))
    changes = await _read_object(request)
    definition = service.parse_definition(service.merged_definition(workflow, changes))
    workflow = await service.update_workflow(
        session, principal=principal, workflow=workflow, definition=definition
    )
    _audit(session, request, principal, "workflow.updated", workflow.id, workflow.name)
    return resource_response(request, service.to_dict(workflow))


@router.delete(
    "/{workflow_id}",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404, 412),
    summary="Delete a workflow",
)
async def delete_workflow(
    workflow_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Remove a workflow from view; executions keep their versions."""
    _can_write(principal)
    workflow = await service.get_workflow(session, principal=principal, workflow_id=workflow_id)
    check_if_match(request, service.to_dict(workflow))
    await service.delete_workflow(session, workflow=workflow)
    _audit(session, request, principal, "workflow.deleted", workflow.id, workflow.name)
    return Response(status_code=204)


@router.get(
    "/{workflow_id}/versions",
    response_model=ListPage[WorkflowVersionRead],
    openapi_extra=list_parameters(service.VERSION_LIST),
    responses=problems(400, 401, 403, 404),
    summary="List a workflow's versions",
)
async def list_versions(
    workflow_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Every version, newest first by default."""
    principal.require(Permission.WORKFLOWS_READ)
    await service.get_workflow(session, principal=principal, workflow_id=workflow_id)
    query = parse_list_query(request, service.VERSION_LIST)
    page = await service.list_versions(session, workflow_id=workflow_id, query=query)
    return JSONResponse(
        list_body(request, [service.version_to_dict(v) for v in page.rows], query, page)
    )


@router.get(
    "/{workflow_id}/versions/{version}",
    response_model=WorkflowVersionRead,
    responses={**not_modified(), **problems(401, 403, 404, 422)},
    summary="Get one version",
)
async def get_version(
    workflow_id: str, version: int, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """One immutable version."""
    principal.require(Permission.WORKFLOWS_READ)
    found = await service.get_version(
        session, principal=principal, workflow_id=workflow_id, version=version
    )
    return resource_response(request, service.version_to_dict(found))
