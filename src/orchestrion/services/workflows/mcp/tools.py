"""The platform's MCP server: its tools and resources (served at ``/mcp`` by :mod:`.server`).

Every active workflow the caller may run is a tool whose input schema is the workflow's
``inputs``; calling it runs the workflow and answers with its outputs. So is every template
the caller may use, through the templates service (``template_tools``). Executions are
resources (``orchestrion://executions/{id}``).

The caller is the principal the gateway verified (bearer token or API key) and forwarded
in the signed identity header; it is read from each HTTP request, so the transport runs
stateless: any instance of the workflows service answers any request, and JSON responses
pass every proxy unchanged.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    CallToolRequestParams,
    CallToolResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ResourceLink,
    ResourceTemplate,
    TextContent,
    TextResourceContents,
    Tool,
)
from starlette.requests import Request

from orchestrion.engine import TERMINAL, Engine, ServiceCallError
from orchestrion.kernel.auth.identity import IDENTITY_HEADER, decode_identity
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import Busy, OrchestrionError
from orchestrion.services.workflows.definitions import service as definitions
from orchestrion.services.workflows.definitions.models import Workflow
from orchestrion.services.workflows.executions import service as executions
from orchestrion.services.workflows.mcp.template_tools import PREFIX, TemplateTools, to_tool
from orchestrion.services.workflows.runtime import PeerCalls

EXECUTION_URI = "orchestrion://executions/{execution_id}"
_URI = re.compile(r"orchestrion://executions/(?P<id>[A-Za-z0-9-]{1,64})")
_FORBIDDEN = -32003  # an application error code: the JSON-RPC range has no "forbidden"
MAX_TOOLS = 500
RECENT_EXECUTIONS = 50
_JSON = "application/json"


def _principal(ctx: ServerRequestContext[Any, Any], secret: bytes) -> Principal:
    request = ctx.request
    value = request.headers.get(IDENTITY_HEADER) if isinstance(request, Request) else None
    principal = decode_identity(value, secret) if value else None
    if principal is None:
        raise MCPError(INVALID_REQUEST, "authentication required")
    return principal


def _require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise MCPError(_FORBIDDEN, f"missing permission '{permission}'")


def tool_names(workflows: list[Workflow]) -> dict[str, Workflow]:
    """Tool name → workflow: the name made safe; a clash gets the id's start appended."""
    named: dict[str, Workflow] = {}
    for workflow in sorted(workflows, key=lambda w: (w.created_at, w.id)):
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", workflow.name).strip("_.-")[:64] or "workflow"
        name = base if base not in named else f"{base}_{workflow.id[:8]}"
        named[name] = workflow
    return named


def _input_schema(workflow: Workflow) -> dict[str, Any]:
    schema = dict(workflow.definition.get("inputs") or {})
    schema.setdefault("type", "object")
    return schema


def _tool(name: str, workflow: Workflow) -> Tool:
    description = workflow.description or f"Run the workflow '{workflow.name}'."
    return Tool(
        name=name,
        title=workflow.name,
        description=f"{description} (workflow {workflow.id}, version {workflow.version})",
        input_schema=_input_schema(workflow),
        meta={"orchestrion/workflow_id": workflow.id},
    )


def _link(execution_id: str) -> ResourceLink:
    return ResourceLink(
        type="resource_link",
        uri=EXECUTION_URI.format(execution_id=execution_id),
        name=f"execution {execution_id}",
        mime_type=_JSON,
    )


def _result(body: dict[str, Any]) -> CallToolResult:
    """What a tool call answers for an execution as it stands."""
    status, execution_id = body["status"], body["id"]
    meta = {"orchestrion/execution_id": execution_id, "orchestrion/status": status}
    if status == "succeeded":
        outputs = body["outputs"] or {}
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps(outputs)), _link(execution_id)],
            structured_content=outputs,
            is_error=False,
            meta=meta,
        )
    if status in TERMINAL:
        message = (body.get("error") or {}).get("message") or status
        text = f"execution {execution_id} {status}: {message}"
        return CallToolResult(
            content=[TextContent(type="text", text=text), _link(execution_id)],
            is_error=True,
            meta=meta,
        )
    text = f"execution {execution_id} is still {status}; read its resource for the outcome"
    return CallToolResult(
        content=[TextContent(type="text", text=text), _link(execution_id)],
        is_error=False,
        meta=meta,
    )


def _refused(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


class WorkflowTools:
    """The MCP handlers: workflows (and templates) as tools, executions as resources."""

    def __init__(
        self,
        *,
        engine: Engine,
        database: Database,
        secret: bytes,
        wait_seconds: float,
        peers: PeerCalls | None = None,
    ) -> None:
        self.engine = engine
        self.database = database
        self.secret = secret
        self.wait_seconds = wait_seconds
        self.templates = TemplateTools(peers) if peers is not None else None

    async def _runnable(self, tenant_id: str) -> dict[str, Workflow]:
        async with self.database.session() as session:
            found = await definitions.runnable_workflows(
                session, tenant_id=tenant_id, limit=MAX_TOOLS
            )
            return tool_names(found)

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        """The workflows the caller may run (none without ``executions:run``)."""
        principal = _principal(ctx, self.secret)
        if not (
            principal.can(Permission.EXECUTIONS_RUN) and principal.can(Permission.WORKFLOWS_READ)
        ):
            return ListToolsResult(tools=[])
        named = await self._runnable(principal.tenant_id)
        tools = [_tool(name, w) for name, w in named.items()]
        if self.templates is not None:
            templates = await self.templates.listed(principal)
            # A workflow's tool keeps its name when a template's would clash with it.
            tools += [to_tool(n, t) for n, t in templates.items() if n not in named]
        return ListToolsResult(tools=tools)

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
    ) -> CallToolResult:
        """Run the workflow; answer with its outputs once it ends (or its id if it runs on)."""
        principal = _principal(ctx, self.secret)
        _require(principal, Permission.EXECUTIONS_RUN)
        _require(principal, Permission.WORKFLOWS_READ)
        try:
            return await self._call(principal, params)
        except Busy as exc:
            # A tool error the caller may retry, not the protocol's internal error.
            return _refused(f"{exc}; try again shortly")

    async def _call(self, principal: Principal, params: CallToolRequestParams) -> CallToolResult:
        runnable = await self._runnable(principal.tenant_id)
        workflow = runnable.get(params.name)
        arguments = dict(params.arguments or {})
        if workflow is not None:
            return await self._run(principal, workflow.id, arguments)
        if self.templates is not None and params.name.startswith(PREFIX):
            template = (await self.templates.listed(principal)).get(params.name)
            if template is not None:
                return await self._run_template(principal, template, arguments, runnable)
        raise MCPError(INVALID_PARAMS, f"unknown tool: {params.name}")

    async def _run_template(
        self,
        principal: Principal,
        template: dict[str, Any],
        arguments: dict[str, Any],
        runnable: dict[str, Workflow],
    ) -> CallToolResult:
        assert self.templates is not None
        parameters, inputs = arguments.get("parameters", {}), arguments.get("inputs", {})
        if not isinstance(parameters, dict) or not isinstance(inputs, dict):
            return _refused("'parameters' and 'inputs' must be objects")
        try:
            workflow_id = await self.templates.workflow_for(
                principal, template, parameters, runnable
            )
        except ServiceCallError as exc:
            return _refused(f"the template could not be made into a workflow: {exc}")
        return await self._run(principal, workflow_id, inputs)

    async def _run(
        self, principal: Principal, workflow_id: str, inputs: dict[str, Any]
    ) -> CallToolResult:
        """Start the workflow; answer with its outputs once it ends (or its id if it runs on)."""
        try:
            async with self.database.session() as session:
                execution = await executions.start_execution(
                    session,
                    engine=self.engine,
                    principal=principal,
                    workflow_id=workflow_id,
                    inputs=inputs,
                )
                execution_id = execution.id
        except OrchestrionError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}"
                for e in exc.errors or []
            )
            return _refused(exc.detail + (f" ({details})" if details else ""))
        deadline = time.monotonic() + self.wait_seconds
        while True:
            async with self.database.session() as session:
                found = await executions.get_execution(
                    session, tenant_id=principal.tenant_id, execution_id=execution_id
                )
                if found.status in TERMINAL or time.monotonic() >= deadline:
                    return _result(await executions.execution_dict(session, found))
            remaining = max(0.0, deadline - time.monotonic())
            await self.engine.wait_for_change(execution_id, min(0.5, remaining))

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        """The tenant's latest executions."""
        principal = _principal(ctx, self.secret)
        if not principal.can(Permission.EXECUTIONS_READ):
            return ListResourcesResult(resources=[])
        async with self.database.session() as session:
            found = await executions.recent_executions(
                session, tenant_id=principal.tenant_id, limit=RECENT_EXECUTIONS
            )
        return ListResourcesResult(
            resources=[
                Resource(
                    uri=EXECUTION_URI.format(execution_id=e.id),
                    name=f"execution {e.id}",
                    title=f"{e.definition.get('name', e.workflow_id)}: {e.status}",
                    mime_type=_JSON,
                )
                for e in found
            ]
        )

    async def list_templates(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListResourceTemplatesResult:
        """Any execution by id."""
        _principal(ctx, self.secret)
        template = ResourceTemplate(
            uri_template=EXECUTION_URI,
            name="execution",
            description="An execution: status, inputs, outputs, error, steps and usage.",
            mime_type=_JSON,
        )
        return ListResourceTemplatesResult(resource_templates=[template])

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: ReadResourceRequestParams
    ) -> ReadResourceResult:
        """An execution as ``GET /api/v1/executions/{id}`` shows it."""
        principal = _principal(ctx, self.secret)
        _require(principal, Permission.EXECUTIONS_READ)
        uri = str(params.uri)
        match = _URI.fullmatch(uri)
        if match is None:
            raise MCPError(INVALID_PARAMS, f"no resource at {uri}")
        try:
            async with self.database.session() as session:
                execution = await executions.get_execution(
                    session, tenant_id=principal.tenant_id, execution_id=match["id"]
                )
                body = await executions.execution_dict(session, execution)
        except OrchestrionError as exc:
            raise MCPError(INVALID_PARAMS, exc.detail) from None
        return ReadResourceResult(
            contents=[TextResourceContents(uri=uri, mime_type=_JSON, text=json.dumps(body))]
        )


def create_session_manager(
    *,
    engine: Engine,
    database: Database,
    secret: bytes,
    wait_seconds: float,
    peers: PeerCalls | None = None,
) -> StreamableHTTPSessionManager:
    """The MCP server behind the SDK's streamable HTTP transport (stateless, JSON answers);
    with ``peers``, the templates service's templates are tools too."""
    tools = WorkflowTools(
        engine=engine, database=database, secret=secret, wait_seconds=wait_seconds, peers=peers
    )
    server: Server[Any] = Server(
        "orchestrion",
        title="Orchestrion workflows",
        instructions="Each tool runs one workflow (a `template.` tool: a workflow made of a "
        "template with `parameters`) and answers with its outputs; "
        "executions are resources (orchestrion://executions/{id}).",
        on_list_tools=tools.list_tools,
        on_call_tool=tools.call_tool,
        on_list_resources=tools.list_resources,
        on_list_resource_templates=tools.list_templates,
        on_read_resource=tools.read_resource,
    )
    return StreamableHTTPSessionManager(server, stateless=True, json_response=True)
