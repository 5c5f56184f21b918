"""Rules of workflow definitions: validation, tenancy and versioning.

A version is the executable part of a workflow (name, description, inputs, steps,
outputs). Changing any of it makes a new version; changing only tags or status does
not, so archiving a workflow does not mint a version nobody wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.engine import (
    DefinitionError,
    WorkflowDefinition,
    default_registry,
    validate_definition,
)
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.http.lists import ListQuery, Page
from orchestrion.kernel.ids import isoformat, utcnow
from orchestrion.services.workflows.definitions import repository
from orchestrion.services.workflows.definitions.models import Workflow, WorkflowVersion
from orchestrion.services.workflows.errors import (
    InvalidDefinition,
    VersionNotFound,
    WorkflowNotFound,
)

#: What ``GET /api/v1/workflows`` may sort, filter and select.
WORKFLOW_LIST = repository.WORKFLOW_LIST
#: What ``GET /api/v1/workflows/{id}/versions`` may sort and select.
VERSION_LIST = repository.VERSION_LIST
_CONTENT_KEYS = ("inputs", "steps", "outputs", "concurrency")
_DEFINITION_KEYS = ("name", "description", "tags", "status", *_CONTENT_KEYS)


def parse_definition(raw: Mapping[str, Any]) -> WorkflowDefinition:
    """A checked definition, or a 422 whose errors name the offending steps."""
    try:
        return validate_definition(raw)
    except DefinitionError as exc:
        summary = "; ".join(str(e["msg"]) for e in exc.errors[:5])
        raise InvalidDefinition(
            f"invalid workflow definition: {summary}", errors=exc.errors
        ) from None


def _content(definition: WorkflowDefinition) -> dict[str, Any]:
    # ``id`` first: the dump follows field inheritance, readers expect the id to lead.
    steps = [
        {"id": s.id, **s.model_dump(mode="json", by_alias=True, exclude_unset=True)}
        for s in definition.steps
    ]
    content: dict[str, Any] = {
        "inputs": definition.inputs,
        "steps": steps,
        "outputs": definition.outputs,
    }
    if definition.concurrency is not None:
        content["concurrency"] = definition.concurrency.model_dump(mode="json", exclude_none=True)
    return content


async def create_workflow(
    session: AsyncSession, *, principal: Principal, definition: WorkflowDefinition
) -> Workflow:
    """Store a new workflow and its version 1."""
    workflow = Workflow(
        tenant_id=principal.tenant_id,
        name=definition.name,
        description=definition.description,
        status=definition.status,
        tags=list(definition.tags),
        version=1,
        definition=_content(definition),
        created_by=principal.user_id,
    )
    session.add(workflow)
    await session.flush()
    _add_version(session, workflow, principal)
    await repository.set_tags(session, workflow_id=workflow.id, tags=workflow.tags)
    await session.flush()
    return workflow


def _add_version(session: AsyncSession, workflow: Workflow, principal: Principal) -> None:
    session.add(
        WorkflowVersion(
            workflow_id=workflow.id,
            version=workflow.version,
            name=workflow.name,
            description=workflow.description,
            definition=workflow.definition,
            created_by=principal.user_id,
            created_at=utcnow(),
        )
    )


async def get_workflow(
    session: AsyncSession, *, principal: Principal, workflow_id: str
) -> Workflow:
    """A workflow of the caller's tenant; 404 otherwise (another tenant's included)."""
    workflow = await repository.get(session, tenant_id=principal.tenant_id, workflow_id=workflow_id)
    if workflow is None:
        raise WorkflowNotFound(f"workflow '{workflow_id}' not found")
    return workflow


async def find_workflow(
    session: AsyncSession, *, tenant_id: str, workflow_id: str
) -> Workflow | None:
    """A live workflow of the tenant, or None: for callers with their own answer to absence."""
    return await repository.get(session, tenant_id=tenant_id, workflow_id=workflow_id)


async def workflow_by_id(session: AsyncSession, *, workflow_id: str) -> Workflow | None:
    """A workflow whatever its tenant, deleted ones included (schedules check both)."""
    return await repository.get_any(session, workflow_id=workflow_id)


async def runnable_workflows(
    session: AsyncSession, *, tenant_id: str, limit: int
) -> list[Workflow]:
    """The tenant's active workflows, oldest first, at most ``limit``."""
    return await repository.active(session, tenant_id=tenant_id, limit=limit)


async def list_workflows(session: AsyncSession, *, principal: Principal, query: ListQuery) -> Page:
    """One page of the caller's tenant's workflows."""
    return await repository.page_of(session, tenant_id=principal.tenant_id, query=query)


async def list_versions(session: AsyncSession, *, workflow_id: str, query: ListQuery) -> Page:
    """One page of the versions of a workflow (found by :func:`get_workflow` first)."""
    return await repository.versions_page(session, workflow_id=workflow_id, query=query)


def merged_definition(workflow: Workflow, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The workflow's definition with the top-level keys of ``changes`` replaced (PATCH)."""
    current = to_dict(workflow)
    merged = {key: current[key] for key in _DEFINITION_KEYS}
    merged.update(changes)
    return merged


async def update_workflow(
    session: AsyncSession,
    *,
    principal: Principal,
    workflow: Workflow,
    definition: WorkflowDefinition,
) -> Workflow:
    """Apply a full definition; a changed executable part makes a new version."""
    content = _content(definition)
    changed = (
        content != workflow.definition
        or definition.name != workflow.name
        or definition.description != workflow.description
    )
    workflow.name = definition.name
    workflow.description = definition.description
    workflow.status = definition.status
    if list(definition.tags) != workflow.tags:
        workflow.tags = list(definition.tags)
        await repository.set_tags(session, workflow_id=workflow.id, tags=workflow.tags)
    if changed:
        workflow.version += 1
        workflow.definition = content
        _add_version(session, workflow, principal)
    workflow.updated_at = utcnow()
    await session.flush()
    return workflow


async def delete_workflow(session: AsyncSession, *, workflow: Workflow) -> None:
    """Hide a workflow; its versions stay for the executions that ran them."""
    workflow.deleted_at = utcnow()
    workflow.updated_at = workflow.deleted_at
    await session.flush()


async def get_version(
    session: AsyncSession, *, principal: Principal, workflow_id: str, version: int
) -> WorkflowVersion:
    """One version of a workflow of the caller's tenant."""
    await get_workflow(session, principal=principal, workflow_id=workflow_id)
    found = await repository.get_version(session, workflow_id=workflow_id, version=version)
    if found is None:
        raise VersionNotFound(f"workflow '{workflow_id}' has no version {version}")
    return found


def to_dict(workflow: Workflow) -> dict[str, Any]:
    """The public JSON of a workflow (API.md: metadata plus the definition)."""
    return {
        "id": workflow.id,
        "tenant_id": workflow.tenant_id,
        "name": workflow.name,
        "description": workflow.description,
        "version": workflow.version,
        "status": workflow.status,
        "tags": list(workflow.tags),
        **{key: workflow.definition.get(key) for key in _CONTENT_KEYS},
        "created_by": workflow.created_by,
        "created_at": isoformat(workflow.created_at),
        "updated_at": isoformat(workflow.updated_at),
    }


def version_to_dict(version: WorkflowVersion) -> dict[str, Any]:
    """The public JSON of a version."""
    return {
        "workflow_id": version.workflow_id,
        "version": version.version,
        "name": version.name,
        "description": version.description,
        **{key: version.definition.get(key) for key in _CONTENT_KEYS},
        "created_by": version.created_by,
        "created_at": isoformat(version.created_at),
    }


def step_types() -> list[dict[str, Any]]:
    """Every registered step type, by name: its ``with`` schema, what it needs and waits for."""
    return [step_type.describe() for step_type in default_registry.all()]
