"""Semantic search finds nodes by meaning, hybrid fuses it with keywords; both stay
within the tenant and follow changes. Runs the bundled local model."""

from __future__ import annotations

import pytest

from orchestrion.kernel.search import reciprocal_rank_fusion
from tests.conftest import user_headers
from tests.services.knowledge.helpers import BASE, node

THINGS = ["Car", "Banana", "Violin", "Democracy", "Thunderstorm", "Keyboard"]


async def _search(client, headers, query: str, mode: str, limit: int = 10) -> list[dict]:
    body = {"query": query, "mode": mode, "limit": limit}
    response = await client.post(f"{BASE}/search", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_semantic_finds_a_node_by_meaning_without_a_shared_word(
    client, admin_headers
) -> None:
    for name in THINGS:
        await node(client, admin_headers, name)
    assert await _search(client, admin_headers, "automobile", "keyword") == []
    hits = await _search(client, admin_headers, "automobile", "semantic")
    assert hits[0]["name"] == "Car"
    assert len(hits) == len(THINGS)  # every node has a cosine; the page is cut at limit
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)
    assert -1.0 <= scores[-1] < scores[0] <= 1.0
    assert scores[0] > scores[1] + 0.1
    fruit = await _search(client, admin_headers, "a yellow tropical fruit", "semantic", limit=1)
    assert [hit["name"] for hit in fruit] == ["Banana"]
    music = await _search(client, admin_headers, "orchestra instrument with strings", "semantic")
    assert music[0]["name"] == "Violin"


async def test_text_counts_and_changes_are_followed(client, admin_headers) -> None:
    first = await node(client, admin_headers, "Item one", text="A recipe for chocolate cake.")
    await node(client, admin_headers, "Item two", text="How to change a flat tyre.")
    before = await _search(client, admin_headers, "baking a dessert", "semantic")
    assert before[0]["node_id"] == first["id"]
    url = f"{BASE}/nodes/{first['id']}"
    body = {"text": "Repairing a bicycle chain."}
    assert (await client.patch(url, json=body, headers=admin_headers)).status_code == 200
    after = await _search(client, admin_headers, "baking a dessert", "semantic")
    score = {hit["node_id"]: hit["score"] for hit in after}[first["id"]]
    assert score < before[0]["score"] - 0.2
    repair = await _search(client, admin_headers, "fixing my bike", "semantic", limit=1)
    assert repair[0]["node_id"] == first["id"]
    await client.delete(url, headers=admin_headers)
    remaining = await _search(client, admin_headers, "fixing my bike", "semantic")
    assert [hit["name"] for hit in remaining] == ["Item two"]


async def test_imported_nodes_are_embedded(client, admin_headers) -> None:
    body = {
        "nodes": [
            {"key": f"k{i}", "type": "concept", "name": name} for i, name in enumerate(THINGS)
        ],
        "edges": [],
    }
    response = await client.post(f"{BASE}/import", json=body, headers=admin_headers)
    assert response.status_code == 200, response.text
    hits = await _search(client, admin_headers, "rain and lightning", "semantic", limit=1)
    assert hits[0]["node_id"] == response.json()["ids"]["k4"]


async def test_hybrid_is_the_rrf_of_keyword_and_semantic(client, admin_headers) -> None:
    for name in THINGS:
        await node(client, admin_headers, name)
    await node(client, admin_headers, "Automobile club", text="Members meet on Sundays.")
    await node(client, admin_headers, "Club sandwich", text="Bread, chicken, bacon.")
    query = "automobile club"
    words = await _search(client, admin_headers, query, "keyword", limit=50)
    meaning = await _search(client, admin_headers, query, "semantic", limit=50)
    hybrid = await _search(client, admin_headers, query, "hybrid", limit=5)
    expected = reciprocal_rank_fusion(
        [[h["node_id"] for h in words], [h["node_id"] for h in meaning]]
    )[:5]
    assert [(h["node_id"], h["score"]) for h in hybrid] == [
        (n, pytest.approx(score)) for n, score in expected
    ]
    # First by keyword and by meaning: 1/61 + 1/61.
    assert hybrid[0]["name"] == "Automobile club"
    assert hybrid[0]["score"] == pytest.approx(2 / 61)
    # A node no keyword matches still ranks, by meaning alone.
    assert "Car" in [h["name"] for h in hybrid]


async def test_search_stays_in_the_tenant(client, admin_headers) -> None:
    await node(client, admin_headers, "Car")
    tenant = await client.post(
        "/api/v1/auth/tenants", json={"name": "other"}, headers=admin_headers
    )
    other = await user_headers(
        client, admin_headers, email="o@other.test", roles=["editor"], tenant_id=tenant.json()["id"]
    )
    for mode in ("semantic", "hybrid"):
        assert await _search(client, other, "automobile", mode) == []
    await node(client, other, "Banana")
    for mode in ("semantic", "hybrid"):
        assert [h["name"] for h in await _search(client, other, "automobile", mode)] == ["Banana"]
        assert [h["name"] for h in await _search(client, admin_headers, "fruit", mode)] == ["Car"]
