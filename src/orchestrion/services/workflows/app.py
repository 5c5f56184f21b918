"""The workflows service's ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from orchestrion import __version__
from orchestrion.kernel.http.app import create_service_app
from orchestrion.services.workflows.endpoints import router
from orchestrion.settings import Settings, open_database


def create_app(settings: Settings) -> FastAPI:
    """The workflows service, on the configured database."""
    app = create_service_app(
        name="workflows",
        title="Orchestrion workflows",
        version=__version__,
        database=open_database(settings),
        identity_secret=settings.secret_key.get_secret_value().encode(),
    )
    app.include_router(router)
    return app
