"""A content app with only the plugin routes, on each database, and callers of two tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import wasmtime
from fastapi import FastAPI

from orchestrion import __version__
from orchestrion.kernel.auth.identity import IDENTITY_HEADER, encode_identity
from orchestrion.kernel.auth.permissions import ROLE_PERMISSIONS
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.http.app import create_service_app
from orchestrion.services.content.plugins.endpoints import router
from orchestrion.services.content.plugins.runtime import PluginRuntime
from orchestrion.settings import Settings, open_database
from tests.conftest import make_settings
from tests.fixtures.lifespan import in_process

WAT = Path(__file__).parent / "wat"
EXAMPLES = Path(__file__).parents[4] / "examples" / "plugins"
Headers = Callable[..., dict[str, str]]


def wasm(name: str) -> bytes:
    """A test plugin (``wat/<name>.wat``) compiled to a binary module."""
    return bytes(wasmtime.wat2wasm((WAT / f"{name}.wat").read_text()))


def example_wasm(name: str) -> bytes:
    """An example plugin of ``examples/plugins`` compiled to a binary module."""
    return bytes(wasmtime.wat2wasm((EXAMPLES / f"{name}.wat").read_text()))


@pytest.fixture
def plugin_overrides() -> dict[str, Any]:
    """The ``plugins`` settings of a test (override the fixture to change them)."""
    return {"timeout_ms": 500, "max_timeout_ms": 2000, "max_memory_pages": 64, "concurrency": 3}


@pytest.fixture
def plugin_settings(
    tmp_path: Path, database_url: str, plugin_overrides: dict[str, Any]
) -> Settings:
    """Settings on the parametrized database with the test's plugin limits."""
    return make_settings(tmp_path, database_url, plugins=plugin_overrides)


@pytest.fixture
async def plugin_app(plugin_settings: Settings) -> AsyncIterator[FastAPI]:
    """The plugin routes in a service app, as the content service mounts them."""
    app = create_service_app(
        name="content",
        title="Orchestrion content",
        version=__version__,
        database=open_database(plugin_settings),
        identity_secret=plugin_settings.secret_key.get_secret_value().encode(),
        limits=plugin_settings.limits,
    )
    runtime = PluginRuntime(plugin_settings.plugins)
    app.state.plugin_runtime = runtime
    app.include_router(router)
    async with in_process(app):
        yield app
    runtime.close()


@pytest.fixture
def runtime(plugin_app: FastAPI) -> PluginRuntime:
    """The app's plugin runtime."""
    found: PluginRuntime = plugin_app.state.plugin_runtime
    return found


@pytest.fixture
async def pclient(plugin_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client talking to the app in-process."""
    transport = httpx.ASGITransport(app=plugin_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def identity(plugin_settings: Settings) -> Headers:
    """Signed identity headers for a principal of ``tenant`` holding ``role``'s permissions."""
    secret = plugin_settings.secret_key.get_secret_value().encode()

    def make(
        tenant: str = "tenant-a", role: str = "editor", subject: str = "user-1"
    ) -> dict[str, str]:
        principal = Principal(
            subject=subject, tenant_id=tenant, roles=(role,), permissions=ROLE_PERMISSIONS[role]
        )
        return {IDENTITY_HEADER: encode_identity(principal, secret)}

    return make


@pytest.fixture
def editor(identity: Headers) -> dict[str, str]:
    """An editor of tenant A."""
    return identity()


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    module: bytes,
    *,
    expect: int = 201,
    **fields: str,
) -> dict[str, Any]:
    """POST a module with form ``fields`` (``name`` defaults to ``plugin``); the body."""
    data = {"name": "plugin", **fields}
    response = await client.post(
        "/api/v1/plugins",
        data=data,
        files={"module": ("plugin.wasm", module, "application/wasm")},
        headers=headers,
    )
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


async def call(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    plugin_id: str,
    function: str,
    *,
    expect: int = 200,
    **body: Any,
) -> dict[str, Any]:
    """POST a call; the body (a result, or a problem when ``expect`` says so)."""
    response = await client.post(
        f"/api/v1/plugins/{plugin_id}/call", json={"function": function, **body}, headers=headers
    )
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result
