"""The embedded platform (what ``orchestrion up`` serves) under a real uvicorn on
loopback, so its lifespan starts the gRPC server, and a reflection client of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from orchestrion.platform import create_embedded_app
from orchestrion.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings, user_headers
from tests.fixtures.databases import copy_template
from tests.fixtures.servers import serve
from tests.services.workflows.grpc.reflected import (
    ReflectionClient,
    bearer,
    grpc_target,
    listen_for_grpc,
)


@dataclass
class Platform:
    """The running platform: HTTP through the gateway, gRPC beside it."""

    http: httpx.AsyncClient
    grpc: ReflectionClient
    target: str
    admin: dict[str, str]
    admin_token: str

    @property
    def admin_metadata(self) -> tuple[tuple[str, str], ...]:
        """``authorization`` metadata for the bootstrap admin."""
        return tuple(bearer(self.admin_token))

    async def user_token(self, email: str, roles: list[str], tenant_id: str | None = None) -> str:
        """A new user's access token."""
        headers = await user_headers(
            self.http, self.admin, email=email, roles=roles, tenant_id=tenant_id
        )
        return headers["Authorization"].removeprefix("Bearer ")

    async def workflow(self, steps: list[dict[str, Any]], **extra: Any) -> str:
        """A new workflow of the admin's tenant; its id."""
        body = {"name": extra.pop("name", "grpc"), "steps": steps, **extra}
        created = await self.http.post("/api/v1/workflows", json=body, headers=self.admin)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


@pytest.fixture
def sqlite_settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    """Test settings on a fresh SQLite database."""
    url = f"sqlite+aiosqlite:///{copy_template(sqlite_template, tmp_path / 'data')}"
    return make_settings(tmp_path, url)


async def running_platform(
    settings: Settings, caplog: pytest.LogCaptureFixture, *, trusted: bytes | None = None
) -> AsyncIterator[Platform]:
    """The platform of ``settings`` served on loopback, as the bootstrap admin; gRPC
    over TLS trusting the ``trusted`` PEM certificate, if given."""
    listen_for_grpc(caplog)
    async with serve(create_embedded_app(settings)) as address:
        target = grpc_target(caplog)
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as http:
            tokens = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
            token = str(tokens["access_token"])
            trust = (
                grpc.ssl_channel_credentials(root_certificates=trusted)
                if trusted is not None
                else None
            )
            client = await ReflectionClient.connect(target, trust)
            try:
                yield Platform(
                    http=http,
                    grpc=client,
                    target=target,
                    admin={"Authorization": f"Bearer {token}"},
                    admin_token=token,
                )
            finally:
                await client.close()


@pytest.fixture
async def platform(
    sqlite_settings: Settings, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Platform]:
    """The platform on SQLite."""
    async for running in running_platform(sqlite_settings, caplog):
        yield running


@pytest.fixture
async def any_platform(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Platform]:
    """The platform on each database backend (SQLite, PostgreSQL)."""
    async for running in running_platform(settings, caplog):
        yield running
