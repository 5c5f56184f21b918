"""The GraphQL types: the REST resources of API.md, fields in camelCase.

Each type is built from the service's JSON (``from_rest``); nested references
(``Workflow.executions``, ``WorkflowExecution.workflow``) resolve through the
operation's DataLoaders, so a page of them costs a bounded number of calls.
"""

# Strawberry's decorators called with arguments are untyped to mypy without its plugin.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import base64
import binascii
import json
from enum import Enum
from typing import Any, Generic, TypeVar, cast

import strawberry
from strawberry.scalars import JSON

from orchestrion.gateway.graphql.calls import Problem
from orchestrion.gateway.graphql.context import Info

T = TypeVar("T")


@strawberry.enum
class SortDirection(Enum):
    """Sort order of a list."""

    ASC = "asc"
    DESC = "desc"


@strawberry.input
class PaginationInput:
    """``limit`` items (at most 100) after the edge whose cursor is ``after``."""

    limit: int | None = None
    after: str | None = None


@strawberry.input
class SortInput:
    """One sort key: a field of the REST list (``createdAt`` or ``created_at``)."""

    field: str
    direction: SortDirection | None = SortDirection.ASC


@strawberry.input
class WorkflowFilter:
    """Filters of ``GET /api/v1/workflows``."""

    status: str | None = None
    tag: str | None = None
    name: str | None = None


@strawberry.input
class ExecutionFilter:
    """Filters of ``GET /api/v1/executions``."""

    workflow_id: strawberry.ID | None = None
    status: str | None = None


@strawberry.input
class ContentFilter:
    """Filters of ``GET /api/v1/content``."""

    content_type: str | None = None
    status: str | None = None
    tag: str | None = None


@strawberry.input
class KnowledgeNodeFilter:
    """Filters of ``GET /api/v1/knowledge/nodes``."""

    type: str | None = None
    name: str | None = None


@strawberry.input
class TemplateFilter:
    """Filters of ``GET /api/v1/templates`` (``q`` searches name and description)."""

    category: str | None = None
    tag: str | None = None
    visibility: str | None = None
    q: str | None = None


@strawberry.input
class CreateWorkflowInput:
    """A workflow definition, as ``POST /api/v1/workflows`` takes it."""

    definition: JSON


@strawberry.type
class PageInfo:
    """Where a page ends."""

    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    """An item and the cursor that resumes right after it."""

    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    """A Relay-style page."""

    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int

    @strawberry.field(description="The page's items without their cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


def encode_cursor(rest_cursor: str, skip: int) -> str:
    """A GraphQL cursor: the REST keyset cursor of a page and how many of it were seen."""
    raw = json.dumps([rest_cursor, skip], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> tuple[str, int]:
    """The inverse of :func:`encode_cursor`; a foreign value is a 400."""
    try:
        rest, skip = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        if isinstance(rest, str) and isinstance(skip, int) and 0 <= skip <= 100:
            return rest, skip
    except (ValueError, TypeError, binascii.Error):
        pass
    raise Problem(400, "invalid cursor: pass back an edge's cursor or pageInfo.endCursor")


@strawberry.type
class Usage:
    """Tokens and cost of an execution's LLM calls."""

    input_tokens: int
    output_tokens: int
    cost_usd: float


@strawberry.type
class ExecutionStep:
    """Where one step of an execution stands."""

    id: strawberry.ID
    status: str
    attempts: int
    output: JSON | None
    error: JSON | None
    started_at: str | None
    finished_at: str | None

    @classmethod
    def from_rest(cls, item: dict[str, Any]) -> ExecutionStep:
        return cls(
            id=item["id"], status=item["status"], attempts=item.get("attempts", 0),
            output=item.get("output"), error=item.get("error"),
            started_at=item.get("started_at"), finished_at=item.get("finished_at"),
        )  # fmt: skip


@strawberry.type
class ExecutionEvent:
    """One entry of an execution's log."""

    seq: int
    type: str
    step_id: str | None
    data: JSON
    at: str

    @classmethod
    def from_rest(cls, item: dict[str, Any]) -> ExecutionEvent:
        return cls(
            seq=item["seq"], type=item["type"], step_id=item.get("step_id"),
            data=cast(JSON, item.get("data") or {}), at=item["at"],
        )  # fmt: skip


@strawberry.type
class WorkflowStatus:
    """An execution's status as a subscription reports it."""

    execution_id: strawberry.ID
    status: str
    outputs: JSON | None
    error: JSON | None


@strawberry.type
class WorkflowExecution:
    """An execution of a workflow."""

    id: strawberry.ID
    workflow_id: strawberry.ID
    workflow_version: int
    status: str
    inputs: JSON
    outputs: JSON | None
    error: JSON | None
    steps: list[ExecutionStep]
    usage: Usage | None
    parent_execution_id: strawberry.ID | None
    created_at: str
    started_at: str | None
    finished_at: str | None

    @classmethod
    def from_rest(cls, item: dict[str, Any]) -> WorkflowExecution:
        usage = item.get("usage")
        return cls(
            id=item["id"],
            workflow_id=item["workflow_id"],
            workflow_version=item["workflow_version"],
            status=item["status"],
            inputs=cast(JSON, item.get("inputs") or {}),
            outputs=item.get("outputs"),
            error=item.get("error"),
            steps=[ExecutionStep.from_rest(s) for s in item.get("steps", [])],
            usage=Usage(**usage) if isinstance(usage, dict) else None,
            parent_execution_id=item.get("parent_execution_id"),
            created_at=item["created_at"],
            started_at=item.get("started_at"),
            finished_at=item.get("finished_at"),
        )

    @strawberry.field(description="The workflow this is an execution of.")
    async def workflow(self, info: Info) -> Workflow | None:
        found = await info.context.loaders.workflow.load(str(self.workflow_id))
        return Workflow.from_rest(found) if found else None

    @strawberry.field(description="The log, from `after` (a seq), at most `limit` entries.")
    async def events(self, info: Info, after: int = 0, limit: int = 100) -> list[ExecutionEvent]:
        page = await info.context.calls.get(
            f"/api/v1/executions/{self.id}/events",
            {"after": max(0, after), "limit": max(1, min(limit, 1000))},
        )
        return [ExecutionEvent.from_rest(e) for e in page["data"]]


@strawberry.type
class Workflow:
    """A workflow definition, at its current version."""

    id: strawberry.ID
    name: str
    description: str | None
    version: int
    status: str
    tags: list[str]
    inputs: JSON | None
    steps: JSON
    outputs: JSON | None
    created_at: str
    updated_at: str

    @classmethod
    def from_rest(cls, item: dict[str, Any]) -> Workflow:
        return cls(
            id=item["id"], name=item["name"], description=item.get("description"),
            version=item["version"], status=item["status"], tags=item.get("tags") or [],
            inputs=item.get("inputs"), steps=cast(JSON, item.get("steps") or []),
            outputs=item.get("outputs"), created_at=item["created_at"],
            updated_at=item["updated_at"],
        )  # fmt: skip

    @strawberry.field(
        description="Its latest `first` executions (at most 100), newest first; "
        "batched over a whole page of workflows."
    )
    async def executions(
        self, info: Info, first: int = 10, status: str | None = None
    ) -> list[WorkflowExecution]:
        if not 1 <= first <= 100:
            raise Problem(400, "'first' must be between 1 and 100")
        items = await info.context.loaders.executions_of.load((str(self.id), first, status))
        return [WorkflowExecution.from_rest(i) for i in items]


@strawberry.type
class Rating:
    """A template's stars."""

    average: float
    count: int


@strawberry.type
class Template:
    """A workflow template."""

    id: strawberry.ID
    name: str
    description: str
    category: str
    tags: list[str]
    parameters: JSON
    definition: JSON
    version: int
    visibility: str
    rating: Rating
    installs: int
    created_at: str
    updated_at: str

    @classmethod
    def from_rest(cls, item: dict[str, Any]) -> Template:
        rating = item.get("rating") or {}
        return cls(
            id=item["id"], name=item["name"], description=item.get("description", ""),
            category=item.get("category", ""), tags=item.get("tags") or [],
            parameters=cast(JSON, item.get("parameters") or {}),
            definition=cast(JSON, item.get("definition") or {}),
            version=item["version"], visibility=item["visibility"],
            rating=Rating(average=rating.get("average", 0.0), count=rating.get("count", 0)),
            installs=item.get("installs", 0), created_at=item["created_at"],
            updated_at=item["updated_at"],
        )  # fmt: skip


@strawberry.type
class Content:
    """A document of the content service, with its analysis once processed."""

    id: strawberry.ID
    title: str
    content_type: str
    size: int
    sha256: str | None
    status: str
    error: str | None
    tags: list[str]
    analysis: JSON | None
    created_at: str
    updated_at: str

    @classmethod
    def from_rest(cls, item: dict[str, Any]) -> Content:
        return cls(
            id=item["id"], title=item["title"], content_type=item["content_type"],
            size=item["size"], sha256=item.get("sha256"), status=item["status"],
            error=item.get("error"), tags=item.get("tags") or [],
            analysis=item.get("analysis"), created_at=item["created_at"],
            updated_at=item.get("updated_at", item["created_at"]),
        )  # fmt: skip


@strawberry.type
class KnowledgeNode:
    """A node of the knowledge graph."""

    id: strawberry.ID
    type: str
    name: str
    text: str
    properties: JSON
    created_at: str
    updated_at: str

    @classmethod
    def from_rest(cls, item: dict[str, Any]) -> KnowledgeNode:
        return cls(
            id=item["id"], type=item["type"], name=item["name"], text=item.get("text", ""),
            properties=cast(JSON, item.get("properties") or {}), created_at=item["created_at"],
            updated_at=item["updated_at"],
        )  # fmt: skip


WorkflowConnection = Connection[Workflow]
ExecutionConnection = Connection[WorkflowExecution]
TemplateConnection = Connection[Template]
ContentConnection = Connection[Content]
KnowledgeNodeConnection = Connection[KnowledgeNode]
