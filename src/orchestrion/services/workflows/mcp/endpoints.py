"""HTTP routes of a tenant's MCP servers (``/api/v1/mcp/servers``).

The platform's own MCP endpoint (``/mcp``) is :mod:`.server`, mounted by the app.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from orchestrion.engine import McpServers
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.http.deps import CurrentPrincipal, Session
from orchestrion.services.workflows.mcp import service
from orchestrion.services.workflows.mcp.schemas import (
    McpServerCreate,
    McpServerEntry,
    McpServerRead,
    McpToolRead,
)
from orchestrion.services.workflows.responses import Items, problems

router = APIRouter(prefix="/api/v1/mcp/servers", tags=["mcp"])


def _servers(request: Request) -> McpServers:
    servers: McpServers = request.app.state.runtime.mcp
    return servers


@router.get(
    "",
    response_model=Items[McpServerEntry],
    responses=problems(401, 403),
    summary="MCP servers `mcp` steps may call",
)
async def list_servers(request: Request, session: Session, principal: CurrentPrincipal) -> Response:
    """The platform's servers (names only) and the tenant's own."""
    principal.require(Permission.WORKFLOWS_READ)
    data = await service.server_list(
        session, servers=_servers(request), tenant_id=principal.tenant_id
    )
    return JSONResponse({"data": data})


@router.post(
    "",
    status_code=201,
    response_model=McpServerRead,
    responses=problems(401, 403, 409, 422),
    summary="Register an MCP server (a URL)",
)
async def create_server(
    body: McpServerCreate,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> Response:
    """A streamable HTTP (or SSE) server for this tenant's `mcp` steps; `headers` write-only."""
    principal.require(Permission.WORKFLOWS_WRITE)
    servers = _servers(request)
    server = await service.create_server(
        session,
        principal=principal,
        body=body,
        fernet=request.app.state.mcp_fernet,
        platform_names=servers.configured,
        allowlist=servers.allowlist,
        limit=request.app.state.mcp_tenant_limit,
    )
    return JSONResponse(
        service.to_dict(server),
        status_code=201,
        headers={"Location": f"/api/v1/mcp/servers/{server.name}"},
    )


@router.get(
    "/{name}",
    response_model=McpServerRead,
    responses=problems(401, 403, 404),
    summary="Get a tenant's MCP server",
)
async def get_server(name: str, session: Session, principal: CurrentPrincipal) -> Response:
    """One of the tenant's servers."""
    principal.require(Permission.WORKFLOWS_READ)
    server = await service.get_server(session, tenant_id=principal.tenant_id, name=name)
    return JSONResponse(service.to_dict(server))


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404),
    summary="Remove a tenant's MCP server",
)
async def delete_server(name: str, session: Session, principal: CurrentPrincipal) -> Response:
    """`mcp` steps naming it fail from now on."""
    principal.require(Permission.WORKFLOWS_WRITE)
    await service.delete_server(session, tenant_id=principal.tenant_id, name=name)
    return Response(status_code=204)


@router.get(
    "/{name}/tools",
    response_model=Items[McpToolRead],
    responses=problems(401, 403, 404, 502, 503, 504),
    summary="The tools an MCP server offers",
)
async def list_tools(name: str, request: Request, principal: CurrentPrincipal) -> Response:
    """Asks the server (platform or tenant) for its tools: names, descriptions, schemas."""
    principal.require(Permission.WORKFLOWS_READ)
    found = await service.tools(servers=_servers(request), tenant_id=principal.tenant_id, name=name)
    return JSONResponse({"data": found})
