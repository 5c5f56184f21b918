"""The examples in ``examples/`` run as written, against the embedded platform."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from orchestrion.platform import create_embedded_app
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings
from tests.fixtures.lifespan import in_process
from tests.fixtures.llm import LlmServer, llm_server
from tests.services.workflows.helpers import start

__all__ = ["llm_server"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
async def platform(
    tmp_path: Path, database_url: str, llm_server: LlmServer, key: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The platform with an OpenAI-compatible provider named ``openai`` on loopback."""
    provider = {"kind": "openai", "base_url": llm_server.openai(key), "api_key": "sk-test"}
    settings = make_settings(tmp_path, database_url, llm={"providers": {"openai": provider}})
    application = create_embedded_app(settings)
    async with in_process(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            tokens = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
            http.headers["Authorization"] = f"Bearer {tokens['access_token']}"
            yield http


async def test_rag_example_retrieves_then_asks_the_model_with_the_context(
    platform: httpx.AsyncClient, llm_server: LlmServer, key: str
) -> None:
    imported = await platform.post(
        "/api/v1/knowledge/import",
        json={
            "nodes": [
                {"key": "p", "type": "concept", "name": "Photosynthesis", "text": "light to sugar"},
                {"key": "c", "type": "concept", "name": "Chlorophyll", "text": "absorbs light"},
                {"key": "t", "type": "concept", "name": "Tax law", "text": "rules on income"},
            ],
            "edges": [{"source": "p", "target": "c", "type": "requires"}],
        },
    )
    assert imported.status_code in (200, 201), imported.text
    definition = json.loads((EXAMPLES / "workflows" / "rag.json").read_text())
    created = await platform.post("/api/v1/workflows", json=definition)
    assert created.status_code == 201, created.text
    llm_server.state.script(key, {"chunks": ["Plants use ", "light."]})
    execution = await start(
        platform, {}, created.json()["id"], {"question": "How do plants use light?"}, wait=15
    )
    assert execution["status"] == "succeeded", execution
    sources = [hit["name"] for hit in execution["outputs"]["sources"]]
    # Both light-related concepts outrank the unrelated one.
    assert set(sources[:2]) == {"Photosynthesis", "Chlorophyll"}, sources
    assert execution["outputs"]["answer"] == "Plants use light."
    prompt = json.dumps(llm_server.state.bodies[key][-1]["messages"])
    assert "Photosynthesis" in prompt
    assert "How do plants use light?" in prompt
