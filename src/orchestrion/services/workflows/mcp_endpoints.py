"""HTTP routes of a tenant's MCP servers (``/api/v1/mcp/servers``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from orchestrion.engine import (
    MCP,
    BlockedDestination,
    McpCallError,
    McpServers,
    McpTimeout,
    McpUnavailable,
    UnknownServer,
)
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.errors import ServiceUnavailable, UpstreamError, UpstreamTimeout
from orchestrion.kernel.http.deps import CurrentPrincipal, Session
from orchestrion.services.workflows import mcp_servers as service

router = APIRouter(prefix="/api/v1/mcp/servers", tags=["mcp"])


def _servers(request: Request) -> McpServers:
    servers: McpServers = request.app.state.engine.resources.get(MCP)
    return servers


@router.get("", summary="MCP servers `mcp` steps may call")
async def list_servers(
    request: Request, session: Session, principal: CurrentPrincipal
) -> dict[str, Any]:
    """The platform's servers (names only) and the tenant's own."""
    principal.require(Permission.WORKFLOWS_READ)
    configured = sorted(_servers(request).configured)
    platform = [{"name": name, "scope": "platform"} for name in configured]
    own = [service.to_dict(s) for s in await service.list_servers(session, principal.tenant_id)]
    return {"data": platform + own}


@router.post("", status_code=201, summary="Register an MCP server (a URL)")
async def create_server(
    body: service.McpServerCreate,
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


@router.get("/{name}", summary="Get a tenant's MCP server")
async def get_server(name: str, session: Session, principal: CurrentPrincipal) -> dict[str, Any]:
    """One of the tenant's servers."""
    principal.require(Permission.WORKFLOWS_READ)
    return service.to_dict(await service.get_server(session, principal.tenant_id, name))


@router.delete("/{name}", status_code=204, summary="Remove a tenant's MCP server")
async def delete_server(name: str, session: Session, principal: CurrentPrincipal) -> Response:
    """`mcp` steps naming it fail from now on."""
    principal.require(Permission.WORKFLOWS_WRITE)
    server = await service.get_server(session, principal.tenant_id, name)
    await session.delete(server)
    return Response(status_code=204)


@router.get("/{name}/tools", summary="The tools an MCP server offers")
async def list_tools(name: str, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """Asks the server (platform or tenant) for its tools: names, descriptions, schemas."""
    principal.require(Permission.WORKFLOWS_READ)
    servers = _servers(request)
    try:
        config = await servers.resolve(principal.tenant_id, name)
    except UnknownServer as exc:
        raise service.McpServerNotFound(str(exc)) from None
    except BlockedDestination as exc:
        raise UpstreamError(str(exc)) from None
    try:
        tools = await servers.pool.list_tools(config, seconds=servers.call_timeout)
    except McpTimeout as exc:
        raise UpstreamTimeout(str(exc)) from None
    except (McpUnavailable, McpCallError) as exc:
        raise ServiceUnavailable(f"MCP server '{name}': {exc}") from None
    return {
        "data": [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
    }
