"""The workflows service's ASGI app: it assembles the sub-packages' routers, the /mcp
endpoint and the runtime (:mod:`.runtime`: the engine, live updates, embedded workers).

definitions/ (workflows, versions, step types), executions/ (runs, event log, stream,
approvals, signals), automation/ (schedules, webhooks), llm/ (providers, budgets, usage,
the platform LLM backend, tokens) and mcp/ (tenants' MCP servers, the /mcp endpoint);
grpc/ serves the internal gRPC API beside HTTP while the app runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from starlette.routing import Route

from orchestrion.engine import configure_expressions, definition_schemas
from orchestrion.kernel.crypto import rotating_fernet
from orchestrion.kernel.http.app import create_service_app
from orchestrion.kernel.http.openapi import add_raw_schemas
from orchestrion.kernel.personal import export_router
from orchestrion.services.workflows import personal
from orchestrion.services.workflows.automation.endpoints import router as automation_router
from orchestrion.services.workflows.definitions.endpoints import router as definitions_router
from orchestrion.services.workflows.executions.endpoints import router as execution_router
from orchestrion.services.workflows.grpc.server import GrpcServer
from orchestrion.services.workflows.llm.endpoints import router as llm_router
from orchestrion.services.workflows.mcp.endpoints import router as mcp_router
from orchestrion.services.workflows.mcp.server import create_mcp_endpoint
from orchestrion.services.workflows.runtime import WorkflowsRuntime, llm_fernet, mcp_fernet
from orchestrion.settings import Settings, open_database, service_app_options


def create_app(settings: Settings) -> FastAPI:
    """The workflows service, on the configured database, with embedded workers if set."""
    configure_expressions(max_size=settings.limits.expression_max_size)
    database = open_database(settings)
    workers = settings.engine.worker_concurrency if settings.engine.embedded_workers else 0
    runtime = WorkflowsRuntime(settings, database, workers=workers, feed_tokens=True)
    secret = settings.secret_key.get_secret_value().encode()
    mcp_endpoint = create_mcp_endpoint(
        engine=runtime.engine,
        database=database,
        secret=secret,
        wait_seconds=settings.mcp.tool_wait_seconds,
        peers=runtime.peer_calls,
    )
    grpc_server = (
        GrpcServer(settings, database=database, engine=runtime.engine)
        if settings.grpc.enabled
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # In the embedded shape the platform hands every service the shared bus and
        # its peers (realtime among them) before the lifespan starts.
        peers = getattr(app.state, "peers", None) or {}
        async with AsyncExitStack() as stack:
            # The MCP server starts with its first request and stops with the app.
            await stack.enter_async_context(mcp_endpoint.running())
            await stack.enter_async_context(
                runtime.running(bus=getattr(app.state, "bus", None), peers=peers)
            )
            if grpc_server is not None:
                revocations = getattr(app.state, "revocations", None)
                await stack.enter_async_context(
                    grpc_server.running(peers=peers, revocations=revocations)
                )
            yield

    app = create_service_app(
        **service_app_options(settings, "workflows"),
        database=database,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.grpc = grpc_server
    app.state.engine = runtime.engine
    app.state.llm_fernet = llm_fernet(settings)
    app.state.fernet = rotating_fernet(
        secret, purpose="orchestrion-webhook-secrets-v1", previous=settings.previous_secrets
    )
    app.include_router(definitions_router)
    app.include_router(execution_router)
    app.include_router(automation_router)
    app.include_router(llm_router)
    app.include_router(mcp_router)
    app.include_router(export_router(personal.SERVICE, personal.export))
    add_raw_schemas(app, definition_schemas())
    # The MCP transport answers POST (and GET/DELETE with a 405) at /mcp itself.
    app.router.routes.append(
        Route("/mcp", endpoint=mcp_endpoint, methods=["GET", "POST", "DELETE"])
    )
    app.state.mcp_fernet = mcp_fernet(settings)
    app.state.mcp_tenant_limit = settings.mcp.tenant_servers_max
    return app
