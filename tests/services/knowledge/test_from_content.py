"""A document processed by the content service reaches the knowledge graph, as the
content service really announces it (the embedded platform, its in-process bus)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.services.content.helpers import upload

TEXT = (
    "Augustus was the first Roman emperor. He ruled the Roman Empire from Rome after the "
    "death of Julius Caesar, and the Senate granted him the title Augustus in 27 BC. "
) * 4


async def _document_node(
    client: httpx.AsyncClient, headers: dict[str, str], content_id: str
) -> dict[str, Any] | None:
    response = await client.get(
        "/api/v1/knowledge/nodes", params={"type": "document", "limit": 100}, headers=headers
    )
    assert response.status_code == 200, response.text
    for node in response.json()["data"]:
        if node["properties"].get("content_id") == content_id:
            found: dict[str, Any] = node
            return found
    return None


async def test_an_uploaded_document_becomes_a_node_of_the_graph(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    document = await upload(
        client, admin_headers, TEXT.encode(), filename="augustus.txt", title="Augustus"
    )
    node = None
    for _ in range(600):
        node = await _document_node(client, admin_headers, document["id"])
        if node is not None:
            break
        await asyncio.sleep(0.1)
    assert node is not None, "the processed document never reached the knowledge graph"
    assert node["name"] == "Augustus"
    neighbors = await client.get(
        f"/api/v1/knowledge/nodes/{node['id']}/neighbors", headers=admin_headers
    )
    assert neighbors.status_code == 200, neighbors.text
    assert neighbors.json()["data"], "no entity or concept linked to the document"
