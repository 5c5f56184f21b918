"""The knowledge service's ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from orchestrion import __version__
from orchestrion.kernel.http.app import create_service_app
from orchestrion.kernel.http.openapi import refine_schemas
from orchestrion.services.knowledge.analysis import GraphCache
from orchestrion.services.knowledge.endpoints import router
from orchestrion.services.knowledge.graph_endpoints import router as graph_router
from orchestrion.services.knowledge.schemas import search_modes_schema
from orchestrion.settings import Settings, open_database


def create_app(settings: Settings) -> FastAPI:
    """The knowledge service, on the configured database."""
    app = create_service_app(
        name="knowledge",
        title="Orchestrion knowledge",
        version=__version__,
        database=open_database(settings),
        identity_secret=settings.secret_key.get_secret_value().encode(),
        limits=settings.limits,
    )
    app.state.graphs = GraphCache()
    app.include_router(router)
    app.include_router(graph_router)
    # Semantic and hybrid search need an embedding model, which search does not have yet:
    # the document offers what the service answers.
    refine_schemas(app, search_modes_schema(["keyword"]))
    return app
