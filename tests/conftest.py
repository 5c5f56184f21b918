"""Shared fixtures: settings, the platform behind its gateway, and an authenticated client.

API tests run through the gateway (``client``), once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from orchestrion.kernel.db.engine import Database
from orchestrion.platform import create_embedded_app
from orchestrion.settings import Settings
from tests.fixtures.brokers import fresh_kafka_url, kafka_url
from tests.fixtures.databases import (
    copy_template,
    in_thread,
    postgres_url,
    sqlite_template,
    truncate_all,
)
from tests.fixtures.lifespan import in_process
from tests.fixtures.mcp_peer import everything, everything_http, everything_sse
from tests.fixtures.oidc_provider import oidc_provider
from tests.fixtures.processes import TEST_PASSWORD_HASHING
from tests.fixtures.servers import serve
from tests.fixtures.upstream import upstream

__all__ = [
    "everything",
    "everything_http",
    "everything_sse",
    "fresh_kafka_url",
    "kafka_url",
    "oidc_provider",
    "postgres_url",
    "sqlite_template",
    "upstream",
]

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "bootstrap-password-1"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of each backend."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        in_thread(asyncio.run, truncate_all(url))
        return url
    template: Path = request.getfixturevalue("sqlite_template")
    return f"sqlite+aiosqlite:///{copy_template(template, tmp_path / 'data')}"


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A :class:`Database` on ``database_url``, disposed of after the test."""
    found = Database(database_url)
    try:
        yield found
    finally:
        await found.dispose()


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings isolated from the environment and any ``.env`` file."""
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": tmp_path / "data",
        "admin_email": ADMIN_EMAIL,
        "admin_password": SecretStr(ADMIN_PASSWORD),
        "secret_key": SecretStr("test-secret-key-0123456789abcdef"),
        "database": {"url": database_url},
        # Tests call a loopback server (tests/fixtures/upstream.py) from http steps. The
        # workers poll at the default interval: an enqueue wakes them, and a timer or
        # retry sets its own deadline; a shorter poll only burns the cores the other
        # tests run on (three queue workers per platform, each claim a transaction).
        "engine": {"http_allowlist": ["127.0.0.1"]},
        # Every platform serves gRPC, each on a free port (tests run side by side).
        "grpc": {"port": 0},
    }
    auth = overrides.pop("auth", {})
    values.update(overrides)
    # Cheap password hashes: argon2id's production costs took a second a login under load.
    values["auth"] = {"password_hashing": TEST_PASSWORD_HASHING, **auth}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Test settings on the parametrized database."""
    return make_settings(tmp_path, database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    """The embedded platform with every service's lifespan running."""
    application = create_embedded_app(settings)
    async with in_process(application) as manager:
        yield manager.app


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the gateway in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def live_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same platform over a loopback connection: what ``client``'s
    in-process transport cannot do, a response read while it is still being sent (an
    SSE stream's frames as they come)."""
    async with (
        serve(app, lifespan=False) as hostport,
        httpx.AsyncClient(base_url=f"http://{hostport}", timeout=30) as http,
    ):
        yield http


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    """Log in and return the token pair, failing the test on anything but 200."""
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


@pytest.fixture
async def admin_tokens(client: httpx.AsyncClient) -> dict[str, Any]:
    """The bootstrap admin's token pair."""
    return await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
def admin_headers(admin_tokens: dict[str, Any]) -> dict[str, str]:
    """``Authorization`` for the bootstrap admin (a platform admin in the default tenant)."""
    return {"Authorization": f"Bearer {admin_tokens['access_token']}"}


async def user_headers(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    *,
    email: str,
    roles: list[str],
    tenant_id: str | None = None,
    password: str = "user-password-1",
) -> dict[str, str]:
    """Create a user through the API and return its ``Authorization`` header."""
    body: dict[str, Any] = {"email": email, "password": password, "roles": roles}
    if tenant_id:
        body["tenant_id"] = tenant_id
    created = await client.post("/api/v1/auth/users", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    tokens = await login(client, email, password)
    return {"Authorization": f"Bearer {tokens['access_token']}"}
