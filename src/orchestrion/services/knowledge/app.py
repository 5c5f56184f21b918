"""The knowledge service's ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from orchestrion import __version__
from orchestrion.kernel.embeddings import open_embedder
from orchestrion.kernel.http.app import create_service_app
from orchestrion.services.knowledge.analysis import GraphCache
from orchestrion.services.knowledge.endpoints import router
from orchestrion.services.knowledge.graph_endpoints import router as graph_router
from orchestrion.services.knowledge.semantic import VectorCache
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
    app.state.embedder = open_embedder(settings.embeddings)
    app.state.vectors = VectorCache()
    app.include_router(router)
    app.include_router(graph_router)
    return app
