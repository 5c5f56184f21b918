"""The knowledge service's ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from orchestrion.kernel.bus import service_bus
from orchestrion.kernel.embeddings import open_embedder
from orchestrion.kernel.http.app import create_service_app
from orchestrion.kernel.http.openapi import narrow_enum, refine_schemas
from orchestrion.services.knowledge import ingest
from orchestrion.services.knowledge.analysis import GraphCache
from orchestrion.services.knowledge.endpoints import router
from orchestrion.services.knowledge.graph_endpoints import router as graph_router
from orchestrion.services.knowledge.semantic import VectorCache
from orchestrion.settings import Settings, open_database, service_app_options


def create_app(settings: Settings) -> FastAPI:
    """The knowledge service, on the configured database; with a bus, it takes in the
    documents the content service processed (:mod:`.ingest`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bus, owned = await service_bus(getattr(app.state, "bus", None), settings.bus.url)
        subscription = None
        try:
            if bus is not None:
                # One event at a time: documents sharing an entity never race to create it.
                subscription = await bus.subscribe(
                    ingest.TOPIC,
                    ingest.GROUP,
                    ingest.handler(bus, app.state.database, app.state.embedder),
                    concurrency=1,
                )
            yield
        finally:
            # The in-process bus outlives this app: stop handling before the database is
            # disposed, or a late event would open a connection nobody closes.
            if subscription is not None:
                await subscription.stop()
            if bus is not None and owned:
                await bus.close()

    app = create_service_app(
        **service_app_options(settings, "knowledge"),
        database=open_database(settings),
        lifespan=lifespan,
    )
    app.state.graphs = GraphCache()
    app.state.embedder = open_embedder(settings.embeddings)
    app.state.vectors = VectorCache()
    app.include_router(router)
    app.include_router(graph_router)
    # Semantic and hybrid search need an embedding provider: the document offers what
    # this installation answers.
    modes = ["keyword"] if app.state.embedder is None else ["keyword", "semantic", "hybrid"]
    refine_schemas(app, narrow_enum("SearchRequest", "mode", modes))
    return app
