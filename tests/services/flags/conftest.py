"""Users of two tenants on the embedded platform (tests/conftest.py's ``client``), and
a handle on the flags service's bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from orchestrion.gateway.app import Gateway
from orchestrion.kernel.bus import Bus
from orchestrion.platform import create_embedded_app
from orchestrion.settings import Settings
from tests.conftest import user_headers
from tests.fixtures.lifespan import in_process

Headers = dict[str, str]


@pytest.fixture
async def embedded(settings: Settings) -> AsyncIterator[tuple[Any, Any]]:
    """The embedded platform as built and as its lifespan wraps it (running)."""
    application = create_embedded_app(settings)
    async with in_process(application) as manager:
        yield application, manager.app


@pytest.fixture
def app(embedded: tuple[Any, Any]) -> Any:
    """tests/conftest.py's ``app``, from the platform ``bus`` also reads."""
    return embedded[1]


@pytest.fixture
def bus(embedded: tuple[Any, Any]) -> Bus:
    """The bus the flags service publishes on (in process: the platform's)."""
    core = embedded[0]
    while not isinstance(core, Gateway):
        core = core.app
    found: Bus = core.upstreams["flags"].app.state.bus  # type: ignore[attr-defined]
    return found


@pytest.fixture
async def viewer(client: httpx.AsyncClient, admin_headers: Headers) -> Headers:
    """A viewer of the default tenant."""
    return await user_headers(client, admin_headers, email="viewer@example.com", roles=["viewer"])


@pytest.fixture
async def other_tenant(client: httpx.AsyncClient, admin_headers: Headers) -> str:
    """The id of a second tenant."""
    tenant = await client.post(
        "/api/v1/auth/tenants", json={"name": "other"}, headers=admin_headers
    )
    assert tenant.status_code == 201, tenant.text
    return str(tenant.json()["id"])


@pytest.fixture
async def other_admin(
    client: httpx.AsyncClient, admin_headers: Headers, other_tenant: str
) -> Headers:
    """An admin (not a platform admin) of the second tenant."""
    return await user_headers(
        client, admin_headers, email="admin@other.example", roles=["admin"], tenant_id=other_tenant
    )
