"""The workflows service's ASGI app: it assembles the sub-packages' routers, the engine
with its step services, the /mcp endpoint and the embedded workers.

definitions/ (workflows, versions, step types), executions/ (runs, event log, stream,
approvals, signals), automation/ (schedules, webhooks), llm/ (providers, budgets, usage,
the platform LLM backend, tokens) and mcp/ (tenants' MCP servers, the /mcp endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from cryptography.fernet import Fernet
from fastapi import FastAPI
from starlette.routing import Route

from orchestrion import __version__
from orchestrion.engine.definition import WorkflowDefinition
from orchestrion.engine.mcp.pool import McpPool
from orchestrion.engine.mcp.servers import McpServers
from orchestrion.engine.outcomes import StepServices
from orchestrion.engine.runtime import Engine
from orchestrion.engine.worker import Worker
from orchestrion.kernel.bus import is_memory, service_bus
from orchestrion.kernel.bus.outbox import OutboxRelay
from orchestrion.kernel.crypto import fernet_for
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.http.app import create_service_app
from orchestrion.kernel.queue import TaskQueue
from orchestrion.services.workflows.automation import service as automation
from orchestrion.services.workflows.automation.endpoints import router as automation_router
from orchestrion.services.workflows.definitions.endpoints import router as definitions_router
from orchestrion.services.workflows.executions.endpoints import router as execution_router
from orchestrion.services.workflows.executions.live import LivePublisher
from orchestrion.services.workflows.executions.service import resolve_workflow
from orchestrion.services.workflows.llm.backend import PlatformLlm, platform_llm
from orchestrion.services.workflows.llm.endpoints import router as llm_router
from orchestrion.services.workflows.llm.token_bus import (
    TokenBatcher,
    TokenFeed,
    start_batcher,
    subscribe_tokens,
)
from orchestrion.services.workflows.mcp import service as mcp_servers
from orchestrion.services.workflows.mcp.endpoints import router as mcp_router
from orchestrion.services.workflows.mcp.server import create_mcp_endpoint
from orchestrion.services.workflows.responses import Problem, finish_openapi
from orchestrion.settings import Settings, open_database

#: Where execution events are published (CloudEvents ``orchestrion.<event type>``).
EXECUTION_TOPIC = "workflows.executions"


def llm_fernet(settings: Settings) -> Fernet:
    """The cipher of tenants' LLM provider keys."""
    secret = settings.secret_key.get_secret_value().encode()
    return fernet_for(secret, purpose="orchestrion-llm-provider-keys-v1")


def mcp_fernet(settings: Settings) -> Fernet:
    """The key tenants' MCP server headers are encrypted under."""
    return fernet_for(settings.secret_key.get_secret_value().encode(), purpose="orchestrion-mcp-v1")


def create_mcp_servers(settings: Settings, database: Database) -> McpServers:
    """The MCP servers ``mcp`` steps reach: the configured ones and each tenant's."""
    config = settings.mcp
    return McpServers(
        pool=McpPool(
            connect_timeout=config.connect_timeout_seconds,
            max_sessions=config.max_sessions,
            idle_seconds=config.idle_seconds,
        ),
        configured=dict(config.servers),
        tenant_lookup=mcp_servers.tenant_lookup(database=database, fernet=mcp_fernet(settings)),
        allowlist=tuple(settings.engine.http_allowlist),
        call_timeout=config.call_timeout_seconds,
    )


def create_engine(settings: Settings, database: Database, http: httpx.AsyncClient) -> Engine:
    """The engine on ``database`` with the configured step services (close ``services.mcp``)."""
    config = settings.engine
    llm = PlatformLlm(settings.llm, database, llm_fernet(settings), http)
    engine = Engine(
        database,
        services=StepServices(
            http=http,
            http_allowlist=tuple(config.http_allowlist),
            env={name: os.environ[name] for name in config.env_allowlist if name in os.environ},
            llm=llm,
            mcp=create_mcp_servers(settings, database),
        ),
        queue=TaskQueue(database, lease=timedelta(seconds=config.lease_seconds)),
        resolver=resolve_workflow,
    )
    llm.engine = engine
    engine.handlers[automation.SCHEDULE_TASK] = functools.partial(automation.fire, engine)
    if not is_memory(settings.bus.url):
        engine.outbox_topic = EXECUTION_TOPIC
    return engine


def create_app(settings: Settings) -> FastAPI:
    """The workflows service, on the configured database, with embedded workers if set."""
    database = open_database(settings)
    http = httpx.AsyncClient(follow_redirects=False)
    engine = create_engine(settings, database, http)
    secret = settings.secret_key.get_secret_value().encode()
    mcp_manager, mcp_endpoint = create_mcp_endpoint(
        engine=engine, database=database, secret=secret, wait_seconds=settings.mcp.tool_wait_seconds
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The MCP endpoint's session manager runs for the app's whole life.
        async with mcp_manager.run(), _services(app):
            yield

    @asynccontextmanager
    async def _services(app: FastAPI) -> AsyncIterator[None]:
        bus, owned = await service_bus(getattr(app.state, "bus", None), settings.bus.url)
        relay = OutboxRelay(database, bus) if bus is not None else None
        if relay is not None:
            relay.start()
        publisher: LivePublisher | None = None
        peers = getattr(app.state, "peers", None) or {}
        # With a broker, realtime reads execution events from the bus; in-process,
        # they are pushed to it directly.
        if "realtime" in peers and engine.outbox_topic is None:
            publisher = LivePublisher(peers["realtime"])
            engine.listeners.append(publisher.listen)
            platform_llm(engine).publisher = publisher
            publisher.start()
        batcher: TokenBatcher | None = None
        if bus is not None and engine.outbox_topic is not None:
            # Tokens of steps run here go to the bus for realtime; those of worker
            # processes come back from it for this service's SSE streams.
            llm = platform_llm(engine)
            batcher = llm.batcher = await start_batcher(settings.bus.url, settings.llm)
            feed = TokenFeed(llm.hub.publish, origin=batcher.origin)
            await subscribe_tokens(bus, settings.llm.token_bus_group, feed)
        worker: Worker | None = None
        running: asyncio.Task[None] | None = None
        if settings.engine.embedded_workers:
            worker = Worker(
                engine,
                concurrency=settings.engine.worker_concurrency,
                poll_seconds=settings.engine.poll_seconds,
            )
            running = asyncio.create_task(worker.run())
        try:
            yield
        finally:
            if worker is not None and running is not None:
                worker.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            if batcher is not None:
                platform_llm(engine).batcher = None
                await batcher.stop()
            if publisher is not None:
                platform_llm(engine).publisher = None
                await publisher.stop()
                engine.listeners.remove(publisher.listen)
            if relay is not None:
                await relay.stop()
            if bus is not None and owned:
                await bus.close()
            await engine.queue.close()
            if engine.services.mcp is not None:
                await engine.services.mcp.aclose()
            await http.aclose()

    app = create_service_app(
        name="workflows",
        title="Orchestrion workflows",
        version=__version__,
        database=database,
        identity_secret=settings.secret_key.get_secret_value().encode(),
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.llm_fernet = llm_fernet(settings)
    app.state.fernet = fernet_for(
        settings.secret_key.get_secret_value().encode(), purpose="orchestrion-webhook-secrets-v1"
    )
    app.include_router(definitions_router)
    app.include_router(execution_router)
    app.include_router(automation_router)
    app.include_router(llm_router)
    app.include_router(mcp_router)
    finish_openapi(app, Problem, WorkflowDefinition)
    # The MCP transport answers POST (and GET/DELETE with a 405) at /mcp itself.
    app.router.routes.append(
        Route("/mcp", endpoint=mcp_endpoint, methods=["GET", "POST", "DELETE"])
    )
    app.state.mcp_fernet = mcp_fernet(settings)
    app.state.mcp_tenant_limit = settings.mcp.tenant_servers_max
    return app
