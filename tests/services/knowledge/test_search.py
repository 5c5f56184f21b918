"""Keyword search ranks by BM25 over names and texts (semantic and hybrid:
test_semantic.py, test_search_providers.py)."""

from __future__ import annotations

from tests.services.knowledge.helpers import BASE, node


async def _search(client, headers, query: str, **extra) -> list[tuple[str, float]]:
    response = await client.post(f"{BASE}/search", json={"query": query, **extra}, headers=headers)
    assert response.status_code == 200, response.text
    return [(hit["name"], hit["score"]) for hit in response.json()["data"]]


async def test_keyword_ranking(client, admin_headers) -> None:
    await node(client, admin_headers, "Graph databases", text="Storing nodes and edges on disk.")
    await node(client, admin_headers, "Sorting", text="Quicksort and merge sort; a graph of calls.")
    await node(client, admin_headers, "Graph theory", text="Graph graph graph: vertices, edges.")
    await node(client, admin_headers, "Cooking", text="Bread, butter and eggs.")
    hits = await _search(client, admin_headers, "graph")
    names = [name for name, _ in hits]
    # In the name outranks in the text; more occurrences rank higher.
    assert names == ["Graph theory", "Graph databases", "Sorting"]
    scores = [score for _, score in hits]
    assert scores == sorted(scores, reverse=True)
    assert scores[-1] > 0
    # Both words beat one; case and punctuation do not matter.
    best, _ = (await _search(client, admin_headers, "EDGES, disk!"))[0]
    assert best == "Graph databases"
    assert await _search(client, admin_headers, "quantum") == []
    assert await _search(client, admin_headers, "?!") == []
    assert len(await _search(client, admin_headers, "graph", limit=2)) == 2


async def test_search_follows_changes(client, admin_headers) -> None:
    created = await node(client, admin_headers, "Alpha", text="first")
    assert [n for n, _ in await _search(client, admin_headers, "first")] == ["Alpha"]
    url = f"{BASE}/nodes/{created['id']}"
    await client.patch(url, json={"text": "second"}, headers=admin_headers)
    assert await _search(client, admin_headers, "first") == []
    assert [n for n, _ in await _search(client, admin_headers, "second")] == ["Alpha"]
    await client.patch(url, json={"name": "Omega"}, headers=admin_headers)
    assert [n for n, _ in await _search(client, admin_headers, "omega")] == ["Omega"]
    await client.delete(url, headers=admin_headers)
    assert await _search(client, admin_headers, "second") == []


async def test_bad_search_requests_are_422(client, admin_headers) -> None:
    unknown = await client.post(
        f"{BASE}/search", json={"query": "graphs", "mode": "fuzzy"}, headers=admin_headers
    )
    assert unknown.status_code == 422
    empty = await client.post(f"{BASE}/search", json={"query": ""}, headers=admin_headers)
    assert empty.status_code == 422
