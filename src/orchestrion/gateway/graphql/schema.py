"""The schema: queries, mutations and subscriptions over the services' REST APIs.

Print it with ``python -m orchestrion.gateway.graphql.schema`` (the SDL).
"""

# Strawberry's decorators called with arguments are untyped to mypy without its plugin.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import functools
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, QueryDepthLimiter
from strawberry.scalars import JSON

from orchestrion.gateway.graphql.calls import Problem
from orchestrion.gateway.graphql.context import Info
from orchestrion.gateway.graphql.limits import CostLimiter, LimitExceeded
from orchestrion.gateway.graphql.pages import fetch_connection
from orchestrion.gateway.graphql.subscriptions import Subscription
from orchestrion.gateway.graphql.types import (
    Connection,
    Content,
    ContentFilter,
    CreateWorkflowInput,
    ExecutionFilter,
    KnowledgeNode,
    KnowledgeNodeFilter,
    PaginationInput,
    SortInput,
    Template,
    TemplateFilter,
    Workflow,
    WorkflowExecution,
    WorkflowFilter,
)
from orchestrion.kernel.errors import OrchestrionError


def _filters(value: Any, names: dict[str, str]) -> dict[str, Any]:
    """REST query parameters from a filter input (GraphQL name → REST name)."""
    if value is None:
        return {}
    return {rest: getattr(value, attr) for attr, rest in names.items()}


@strawberry.type
class Query:
    """Reads, each one the caller's REST call (same permissions, same tenant)."""

    @strawberry.field(description="Workflows of the caller's tenant.")
    async def workflows(
        self,
        info: Info,
        filter: WorkflowFilter | None = None,
        pagination: PaginationInput | None = None,
        sort: list[SortInput] | None = None,
    ) -> Connection[Workflow]:
        loaders = info.context.loaders
        return await fetch_connection(
            info.context.calls, "/api/v1/workflows", Workflow.from_rest,
            filters=_filters(filter, {"status": "status", "tag": "tag", "name": "name"}),
            pagination=pagination, sort=sort, seen=loaders.prime_workflows,
        )  # fmt: skip

    @strawberry.field(description="One workflow; another tenant's is NOT_FOUND.")
    async def workflow(self, info: Info, id: strawberry.ID) -> Workflow | None:
        found = await info.context.loaders.workflow.load(str(id))
        if found is None:
            raise Problem(404, f"workflow '{id}' not found")
        return Workflow.from_rest(found)

    @strawberry.field(description="Executions of the caller's tenant.")
    async def executions(
        self,
        info: Info,
        filter: ExecutionFilter | None = None,
        pagination: PaginationInput | None = None,
        sort: list[SortInput] | None = None,
    ) -> Connection[WorkflowExecution]:
        loaders = info.context.loaders
        return await fetch_connection(
            info.context.calls, "/api/v1/executions", WorkflowExecution.from_rest,
            filters=_filters(filter, {"workflow_id": "workflow_id", "status": "status"}),
            pagination=pagination, sort=sort, seen=loaders.prime_executions,
        )  # fmt: skip

    @strawberry.field(description="One execution; another tenant's is NOT_FOUND.")
    async def execution(self, info: Info, id: strawberry.ID) -> WorkflowExecution | None:
        found = await info.context.loaders.execution.load(str(id))
        if found is None:
            raise Problem(404, f"execution '{id}' not found")
        return WorkflowExecution.from_rest(found)

    @strawberry.field(description="Documents of the content service.")
    async def contents(
        self,
        info: Info,
        filter: ContentFilter | None = None,
        pagination: PaginationInput | None = None,
        sort: list[SortInput] | None = None,
    ) -> Connection[Content]:
        names = {"content_type": "content_type", "status": "status", "tag": "tag"}
        return await fetch_connection(
            info.context.calls, "/api/v1/content", Content.from_rest,
            filters=_filters(filter, names), pagination=pagination, sort=sort,
        )  # fmt: skip

    @strawberry.field(description="One document.")
    async def content(self, info: Info, id: strawberry.ID) -> Content | None:
        return Content.from_rest(await info.context.calls.get(f"/api/v1/content/{id}"))

    @strawberry.field(description="Nodes of the knowledge graph.")
    async def knowledge_nodes(
        self,
        info: Info,
        filter: KnowledgeNodeFilter | None = None,
        pagination: PaginationInput | None = None,
        sort: list[SortInput] | None = None,
    ) -> Connection[KnowledgeNode]:
        return await fetch_connection(
            info.context.calls, "/api/v1/knowledge/nodes", KnowledgeNode.from_rest,
            filters=_filters(filter, {"type": "type", "name": "name"}),
            pagination=pagination, sort=sort,
        )  # fmt: skip

    @strawberry.field(description="One node of the knowledge graph.")
    async def knowledge_node(self, info: Info, id: strawberry.ID) -> KnowledgeNode | None:
        body = await info.context.calls.get(f"/api/v1/knowledge/nodes/{id}")
        return KnowledgeNode.from_rest(body)

    @strawberry.field(description="Templates the caller sees (its own, shared and public).")
    async def templates(
        self,
        info: Info,
        filter: TemplateFilter | None = None,
        pagination: PaginationInput | None = None,
        sort: list[SortInput] | None = None,
    ) -> Connection[Template]:
        names = {"category": "category", "tag": "tag", "visibility": "visibility", "q": "q"}
        return await fetch_connection(
            info.context.calls, "/api/v1/templates", Template.from_rest,
            filters=_filters(filter, names), pagination=pagination, sort=sort,
        )  # fmt: skip

    @strawberry.field(description="One template.")
    async def template(self, info: Info, id: strawberry.ID) -> Template | None:
        return Template.from_rest(await info.context.calls.get(f"/api/v1/templates/{id}"))


@strawberry.type
class Mutation:
    """Changes, each one the caller's REST call."""

    @strawberry.mutation(description="`POST /api/v1/workflows` with the definition.")
    async def create_workflow(self, info: Info, input: CreateWorkflowInput) -> Workflow:
        if not isinstance(input.definition, dict):
            raise Problem(400, "input.definition must be a JSON object")
        body = await info.context.calls.post("/api/v1/workflows", input.definition)
        info.context.loaders.prime_workflows([body])
        return Workflow.from_rest(body)

    @strawberry.mutation(
        description="Start an execution; `wait` (seconds) answers once it finished, if it "
        "does within that time."
    )
    async def execute_workflow(
        self, info: Info, id: strawberry.ID, inputs: JSON, wait: float | None = None
    ) -> WorkflowExecution:
        if not isinstance(inputs, dict):
            raise Problem(400, "inputs must be a JSON object")
        body = await info.context.calls.post(
            f"/api/v1/workflows/{id}/executions", {"inputs": inputs}, {"wait": wait}
        )
        return WorkflowExecution.from_rest(body)

    @strawberry.mutation(description="Cancel an execution.")
    async def cancel_execution(self, info: Info, id: strawberry.ID) -> WorkflowExecution:
        body = await info.context.calls.post(f"/api/v1/executions/{id}/cancel")
        return WorkflowExecution.from_rest(body)

    @strawberry.mutation(description="Approve or reject a waiting `approval` step.")
    async def approve_step(
        self,
        info: Info,
        execution_id: strawberry.ID,
        step_id: strawberry.ID,
        approved: bool = True,
        data: JSON | None = None,
    ) -> WorkflowExecution:
        body = await info.context.calls.post(
            f"/api/v1/executions/{execution_id}/steps/{step_id}/approve",
            {"approved": approved, "data": data if data is not None else {}},
        )
        return WorkflowExecution.from_rest(body)


EXPECTED = (Problem, OrchestrionError, LimitExceeded)


def _mask(error: GraphQLError) -> bool:
    """Hide everything but what we raise on purpose (and GraphQL's own errors)."""
    original = error.original_error
    return original is not None and not isinstance(original, EXPECTED)


class OrchestrionSchema(strawberry.Schema):
    """Our errors carry ``extensions.code`` and ``extensions.status``."""

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            original = error.original_error
            if isinstance(original, OrchestrionError):
                original = Problem.of(original)
            if isinstance(original, Problem | LimitExceeded):
                error.extensions = {**(error.extensions or {}), **original.extensions()}
        super().process_errors([e for e in errors if _mask(e)], execution_context)


@functools.lru_cache(maxsize=8)
def build_schema(*, max_depth: int, max_cost: int) -> strawberry.Schema:
    """The schema with its limits: depth, cost, and no internal error shown.

    Built once per set of limits (it takes a fifth of a second; every gateway of a
    process shares it: extensions are made per operation, so nothing in it changes)."""
    return OrchestrionSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # Factories: each operation gets its own extension instances.
        extensions=[
            lambda: QueryDepthLimiter(max_depth=max_depth),
            lambda: CostLimiter(max_cost=max_cost),
            lambda: MaskErrors(should_mask_error=_mask, error_message="Internal error."),
        ],
    )


if __name__ == "__main__":  # pragma: no cover
    print(build_schema(max_depth=10, max_cost=10_000).as_str())
