"""Semantic search without a provider (422) and with one that is down (503, while
writes still succeed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrion.settings import Settings
from tests.conftest import make_settings
from tests.fixtures.servers import free_port
from tests.services.knowledge.helpers import BASE, node


@pytest.fixture(params=["none", "down"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    if request.param == "none":
        embeddings = {"provider": "none"}
    else:
        url = f"http://127.0.0.1:{free_port()}/v1"
        embeddings = {"provider": "openai", "url": url, "timeout_seconds": 5}
    return make_settings(tmp_path, database_url, embeddings=embeddings)


async def test_semantic_needs_a_working_provider(client, admin_headers, settings) -> None:
    # Writes never depend on the provider: the vector is computed later.
    created = await node(client, admin_headers, "Graph theory", text="vertices and edges")
    patched = await client.patch(
        f"{BASE}/nodes/{created['id']}", json={"text": "nodes"}, headers=admin_headers
    )
    assert patched.status_code == 200
    imported = await client.post(
        f"{BASE}/import",
        json={"nodes": [{"key": "a", "type": "concept", "name": "Sorting"}], "edges": []},
        headers=admin_headers,
    )
    assert imported.status_code == 200
    for mode in ("semantic", "hybrid"):
        response = await client.post(
            f"{BASE}/search", json={"query": "graphs", "mode": mode}, headers=admin_headers
        )
        problem = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        if settings.embeddings.provider == "none":
            assert response.status_code == 422
            assert "no embedding provider is configured" in problem["detail"]
        else:
            assert response.status_code == 503
            assert "unreachable" in problem["detail"]
    keyword = await client.post(f"{BASE}/search", json={"query": "graph"}, headers=admin_headers)
    assert [hit["name"] for hit in keyword.json()["data"]] == ["Graph theory"]
