"""Queries of workflows and their versions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.http.lists import ListQuery, ListSpec, Page, equals, fetch_page, one_of
from orchestrion.services.workflows.definitions.models import (
    Workflow,
    WorkflowTag,
    WorkflowVersion,
)


def _has_tag(value: str) -> Any:
    return exists().where(WorkflowTag.workflow_id == Workflow.id, WorkflowTag.tag == value)


WORKFLOW_LIST = ListSpec(
    sortable={
        "created_at": Workflow.created_at,
        "updated_at": Workflow.updated_at,
        "name": Workflow.name,
        "status": Workflow.status,
        "version": Workflow.version,
    },
    filters={
        "status": equals(Workflow.status),
        "name": equals(Workflow.name),
        "tag": _has_tag,
        # Several ids (comma-separated): one call resolves a batch of references.
        "id": one_of(Workflow.id),
    },
    fields=frozenset(
        {
            "id",
            "tenant_id",
            "name",
            "description",
            "status",
            "tags",
            "version",
            "inputs",
            "steps",
            "outputs",
            "created_by",
            "created_at",
            "updated_at",
        }
    ),
    id_column=Workflow.id,
)

VERSION_LIST = ListSpec(
    sortable={"version": WorkflowVersion.version, "created_at": WorkflowVersion.created_at},
    filters={},
    fields=frozenset(
        {
            "id",
            "workflow_id",
            "version",
            "name",
            "description",
            "inputs",
            "steps",
            "outputs",
            "created_by",
            "created_at",
        }
    ),
    default_sort="version:desc",
    id_column=WorkflowVersion.version,
)


def workflows_of(tenant_id: str) -> Select[Workflow]:
    """Live workflows of a tenant."""
    return select(Workflow).where(Workflow.tenant_id == tenant_id, Workflow.deleted_at.is_(None))


async def page_of(session: AsyncSession, *, tenant_id: str, query: ListQuery) -> Page:
    """One page of a tenant's live workflows."""
    return await fetch_page(session, workflows_of(tenant_id), WORKFLOW_LIST, query)


async def get(session: AsyncSession, *, tenant_id: str, workflow_id: str) -> Workflow | None:
    """A live workflow of the tenant, or None (another tenant's is None too)."""
    result = await session.execute(workflows_of(tenant_id).where(Workflow.id == workflow_id))
    return result.scalar_one_or_none()


async def get_any(session: AsyncSession, *, workflow_id: str) -> Workflow | None:
    """A workflow by id, whatever its tenant, deleted ones included."""
    return await session.get(Workflow, workflow_id)


async def active(session: AsyncSession, *, tenant_id: str, limit: int) -> list[Workflow]:
    """The tenant's active workflows, oldest first."""
    rows = await session.execute(
        workflows_of(tenant_id)
        .where(Workflow.status == "active")
        .order_by(Workflow.created_at)
        .limit(limit)
    )
    return list(rows.scalars())


def versions_of(workflow_id: str) -> Select[WorkflowVersion]:
    """Every version of a workflow."""
    return select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow_id)


async def versions_page(session: AsyncSession, *, workflow_id: str, query: ListQuery) -> Page:
    """One page of a workflow's versions."""
    return await fetch_page(session, versions_of(workflow_id), VERSION_LIST, query)


async def get_version(
    session: AsyncSession, *, workflow_id: str, version: int
) -> WorkflowVersion | None:
    """One version, or None."""
    return await session.get(WorkflowVersion, (workflow_id, version))


async def set_tags(session: AsyncSession, *, workflow_id: str, tags: list[str]) -> None:
    """Replace the tag rows of a workflow."""
    await session.execute(delete(WorkflowTag).where(WorkflowTag.workflow_id == workflow_id))
    session.add_all(WorkflowTag(workflow_id=workflow_id, tag=tag) for tag in dict.fromkeys(tags))
