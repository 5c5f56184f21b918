"""Helpers for knowledge tests: create nodes and edges, import generated graphs."""

from __future__ import annotations

import random
from typing import Any

import httpx
import networkx as nx

BASE = "/api/v1/knowledge"


async def node(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, **fields: Any
) -> dict[str, Any]:
    """A new node (type ``concept`` unless given); its body."""
    body = {"type": fields.pop("type", "concept"), "name": name, **fields}
    response = await client.post(f"{BASE}/nodes", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def edge(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    source: str,
    target: str,
    type: str = "related",
    **fields: Any,
) -> dict[str, Any]:
    """A new edge; its body."""
    body = {"source": source, "target": target, "type": type, **fields}
    response = await client.post(f"{BASE}/edges", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def import_graph(
    client: httpx.AsyncClient, headers: dict[str, str], graph: nx.MultiDiGraph
) -> dict[str, str]:
    """Import ``graph`` (node labels are keys, edge attribute ``weight``); key -> id."""
    body = {
        "nodes": [
            {"key": str(n), "type": data.get("type", "concept"), "name": data.get("name", str(n))}
            for n, data in graph.nodes(data=True)
        ],
        "edges": [
            {"source": str(u), "target": str(v), "type": "link", "weight": data["weight"]}
            for u, v, data in graph.edges(data=True)
        ],
    }
    response = await client.post(f"{BASE}/import", json=body, headers=headers)
    assert response.status_code == 200, response.text
    ids: dict[str, str] = response.json()["ids"]
    return ids


def random_graph(nodes: int, edges: int, seed: int) -> nx.MultiDiGraph:
    """A random directed multigraph with weights from a few values (ties happen) and 0."""
    rng = random.Random(seed)
    graph = nx.MultiDiGraph()
    graph.add_nodes_from(f"n{i}" for i in range(nodes))
    for _ in range(edges):
        u, v = rng.randrange(nodes), rng.randrange(nodes)
        weight = rng.choice([0.0, 0.5, 1.0, 2.0, 3.0, round(rng.uniform(0.1, 9.9), 3)])
        graph.add_edge(f"n{u}", f"n{v}", weight=weight)
    return graph
