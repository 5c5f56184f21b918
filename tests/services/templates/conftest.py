"""The embedded platform for template tests, with a loopback LLM provider, and callers
in two tenants."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrion.platform import create_embedded_app
from orchestrion.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings, user_headers
from tests.fixtures.lifespan import in_process
from tests.fixtures.llm import LlmServer, llm_server

__all__ = ["llm_server"]
Headers = dict[str, str]


@pytest.fixture
def llm_key() -> str:
    """This test's provider key (the loopback server keeps what it saw per key)."""
    return uuid.uuid4().hex


@pytest.fixture
def settings(tmp_path: Path, database_url: str, llm_server: LlmServer, llm_key: str) -> Settings:
    """Provider `loop` (OpenAI-compatible) on loopback."""
    providers = {
        "loop": {"kind": "openai", "base_url": llm_server.openai(llm_key), "api_key": "sk-t"}
    }
    return make_settings(tmp_path, database_url, llm={"providers": providers, "max_retries": 1})


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the embedded platform's gateway."""
    application = create_embedded_app(settings)
    async with in_process(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> Headers:
    """The bootstrap admin of the default tenant."""
    tokens = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
async def editor(client: httpx.AsyncClient, admin: Headers) -> Headers:
    """A second editor of the default tenant."""
    return await user_headers(client, admin, email="editor@example.com", roles=["editor"])


@pytest.fixture
async def viewer(client: httpx.AsyncClient, admin: Headers) -> Headers:
    """A viewer of the default tenant."""
    return await user_headers(client, admin, email="viewer@example.com", roles=["viewer"])


@pytest.fixture
async def other(client: httpx.AsyncClient, admin: Headers) -> Headers:
    """An editor of another tenant."""
    tenant = await client.post("/api/v1/auth/tenants", json={"name": "other"}, headers=admin)
    assert tenant.status_code == 201, tenant.text
    return await user_headers(
        client, admin, email="editor@other.example", roles=["editor"], tenant_id=tenant.json()["id"]
    )


def body(**changes: Any) -> dict[str, Any]:
    """A template with one transform step using a parameter, changed by ``changes``."""
    template: dict[str, Any] = {
        "name": "Greeter",
        "description": "Greets someone politely.",
        "category": "Demo",
        "tags": ["demo", "greeting"],
        "parameters": {
            "type": "object",
            "properties": {
                "greeting": {"type": "string", "default": "Hello"},
                "times": {"type": "integer", "minimum": 1},
            },
            "required": ["times"],
        },
        "definition": {
            "name": "greeter",
            "inputs": {"type": "object", "properties": {"who": {"type": "string"}}},
            "steps": [
                {
                    "id": "greet",
                    "type": "transform",
                    "with": {
                        "text": "{{ params.greeting }}, {{ inputs.who }}!",
                        "times": "{{ params.times }}",
                    },
                }
            ],
            "outputs": {"text": "{{ steps.greet.output.text }}"},
        },
    }
    template.update(changes)
    return template


async def create(client: httpx.AsyncClient, headers: Headers, **changes: Any) -> dict[str, Any]:
    """POST a template (:func:`body` with ``changes``); the created template."""
    response = await client.post("/api/v1/templates", json=body(**changes), headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def listed(
    client: httpx.AsyncClient, headers: Headers, **params: Any
) -> list[dict[str, Any]]:
    """The templates a list answers with ``params``."""
    response = await client.get("/api/v1/templates", params=params, headers=headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data
