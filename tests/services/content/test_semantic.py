"""Semantic and hybrid search with the local embedding model, and the vector cache."""

from __future__ import annotations

from tests.services.content.helpers import BASE, add_text
from tests.services.content.test_analysis_unit import EMPERORS, PHOTOSYNTHESIS

EMBEDDINGS = "local"


async def _search(client, headers, query: str, mode: str, **extra) -> list[dict]:
    response = await client.post(
        f"{BASE}/search", json={"query": query, "mode": mode, **extra}, headers=headers
    )
    assert response.status_code == 200, response.text
    hits: list[dict] = response.json()["data"]
    return hits


async def test_semantic_and_hybrid(app, client, admin_headers) -> None:
    plants = await add_text(client, admin_headers, PHOTOSYNTHESIS)
    rome = await add_text(client, admin_headers, EMPERORS)
    # No shared word with either text: only meaning can find it.
    hits = await _search(client, admin_headers, "how vegetation feeds itself", "semantic")
    assert hits[0]["content_id"] == plants["id"]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in scores)
    hits = await _search(client, admin_headers, "ancient rulers of an empire", "semantic")
    assert hits[0]["content_id"] == rome["id"]
    hybrid = await _search(client, admin_headers, "chlorophyll", "hybrid", limit=3)
    assert hybrid[0]["content_id"] == plants["id"]
    assert len(hybrid) <= 3
    # Deleting a document changes the tenant's revision: its chunks leave the results.
    assert (await client.delete(f"{BASE}/{plants['id']}", headers=admin_headers)).status_code == 204
    after = await _search(client, admin_headers, "how vegetation feeds itself", "semantic")
    assert plants["id"] not in {h["content_id"] for h in after}
