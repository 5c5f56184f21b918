"""The templates service on its own: without a reachable workflows service, instantiating
is a 503 and nothing is counted; with one at an explicit URL, the call goes there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from orchestrion.kernel.auth.identity import IDENTITY_HEADER, decode_identity, encode_identity
from orchestrion.kernel.auth.permissions import ROLE_PERMISSIONS
from orchestrion.kernel.auth.principal import Principal
from orchestrion.services.templates.app import create_app
from orchestrion.settings import Settings
from tests.conftest import make_settings
from tests.fixtures.lifespan import in_process
from tests.fixtures.servers import serve_in_thread
from tests.services.templates.conftest import body

SECRET = "test-secret-key-0123456789abcdef"


def _headers(tenant: str = "tenant-a", role: str = "editor") -> dict[str, str]:
    principal = Principal(
        subject="user-1", tenant_id=tenant, roles=(role,), permissions=ROLE_PERMISSIONS[role]
    )
    return {IDENTITY_HEADER: encode_identity(principal, SECRET.encode())}


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with in_process(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://templates") as http:
            yield http


@pytest.fixture
async def alone(tmp_path: Path, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(make_settings(tmp_path, database_url)):
        yield client


async def test_unreachable_workflows_is_503(alone: httpx.AsyncClient) -> None:
    created = await alone.post("/api/v1/templates", json=body(), headers=_headers())
    assert created.status_code == 201, created.text
    url = f"/api/v1/templates/{created.json()['id']}"
    made = await alone.post(
        f"{url}/instantiate", json={"parameters": {"times": 1}}, headers=_headers()
    )
    assert made.status_code == 503, made.text
    assert made.headers["content-type"].startswith("application/problem+json")
    assert (await alone.get(url, headers=_headers())).json()["installs"] == 0


def _workflows_stand_in(seen: list[dict[str, Any]]) -> FastAPI:
    """A workflows service that records what it is sent and answers 201."""
    app = FastAPI()

    @app.post("/api/v1/workflows", status_code=201)
    async def create(payload: dict[str, Any], request: Request) -> dict[str, Any]:
        principal = decode_identity(request.headers[IDENTITY_HEADER], SECRET.encode())
        assert principal is not None
        seen.append({"body": payload, "tenant": principal.tenant_id})
        now = "2026-01-01T00:00:00Z"
        return {"id": "wf-1", "tenant_id": principal.tenant_id, "version": 1, "status": "active",
                "tags": [], "created_at": now, "updated_at": now, **payload}  # fmt: skip

    return app


async def test_a_workflows_url_in_the_settings_is_called_with_the_callers_identity(
    tmp_path: Path, database_url: str
) -> None:
    seen: list[dict[str, Any]] = []
    with serve_in_thread(_workflows_stand_in(seen)) as url:
        settings = make_settings(tmp_path, database_url, peers={"workflows": url})
        async for client in _client(settings):
            created = await client.post("/api/v1/templates", json=body(), headers=_headers())
            template_id = created.json()["id"]
            made = await client.post(
                f"/api/v1/templates/{template_id}/instantiate",
                json={"parameters": {"times": 2}, "name": "mine"},
                headers=_headers(),
            )
            assert made.status_code == 201, made.text
            assert made.json()["id"] == "wf-1"
    assert seen[0]["tenant"] == "tenant-a"
    assert seen[0]["body"]["name"] == "mine"
    assert seen[0]["body"]["steps"][0]["with"]["times"] == 2
