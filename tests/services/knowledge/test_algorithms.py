"""Paths, PageRank, communities and similarity through the API, checked against NetworkX
on generated graphs."""

from __future__ import annotations

import itertools
import math
import random

import networkx as nx
import pytest

from tests.services.knowledge.helpers import BASE, edge, import_graph, node, random_graph


async def _path(client, headers, source: str, target: str, algorithm: str):
    return await client.get(
        f"{BASE}/path?from={source}&to={target}&algorithm={algorithm}", headers=headers
    )


def _check_walk(body, graph: nx.MultiDiGraph, ids: dict[str, str], edges: dict[str, dict]) -> None:
    """The answer is a real walk: edges join consecutive nodes; cost is their weight sum."""
    assert len(body["edges"]) == len(body["nodes"]) - 1
    for (u, v), edge_id in zip(itertools.pairwise(body["nodes"]), body["edges"], strict=True):
        assert (edges[edge_id]["source"], edges[edge_id]["target"]) == (u, v)
    assert body["cost"] == pytest.approx(sum(edges[e]["weight"] for e in body["edges"]))


@pytest.mark.parametrize("seed", [1, 2])
async def test_paths_agree_with_networkx(client, admin_headers, seed: int) -> None:
    graph = random_graph(60, 180, seed)
    ids = await import_graph(client, admin_headers, graph)
    key = {v: k for k, v in ids.items()}
    listed = await client.get(f"{BASE}/export", headers=admin_headers)
    edges = {e["id"]: e for e in listed.json()["edges"]}
    rng = random.Random(seed)
    pairs = [(f"n{rng.randrange(60)}", f"n{rng.randrange(60)}") for _ in range(25)]
    reachable = 0
    for source, target in pairs:
        try:
            least = nx.dijkstra_path_length(graph, source, target, weight="weight")
            fewest = nx.shortest_path_length(graph, source, target)
        except nx.NetworkXNoPath:
            for algorithm in ("bfs", "dijkstra", "astar"):
                response = await _path(client, admin_headers, ids[source], ids[target], algorithm)
                assert response.status_code == 404, response.text
                assert response.headers["content-type"] == "application/problem+json"
            continue
        reachable += 1
        for algorithm in ("bfs", "dijkstra", "astar"):
            response = await _path(client, admin_headers, ids[source], ids[target], algorithm)
            assert response.status_code == 200, response.text
            body = response.json()
            assert (key[body["nodes"][0]], key[body["nodes"][-1]]) == (source, target)
            _check_walk(body, graph, ids, edges)
            if algorithm == "bfs":
                assert len(body["edges"]) == fewest
            else:
                assert body["cost"] == pytest.approx(least), (algorithm, source, target)
    assert reachable >= 10  # the generated graphs do exercise found paths


async def test_path_follows_changes_and_rejects_bad_input(client, admin_headers) -> None:
    a, b, c = [await node(client, admin_headers, n) for n in "abc"]
    await edge(client, admin_headers, a["id"], b["id"], weight=1)
    await edge(client, admin_headers, b["id"], c["id"], weight=1)
    first = await _path(client, admin_headers, a["id"], c["id"], "dijkstra")
    assert first.json()["cost"] == 2
    assert first.json()["nodes"] == [a["id"], b["id"], c["id"]]
    shortcut = await edge(client, admin_headers, a["id"], c["id"], weight=0.5)
    second = await _path(client, admin_headers, a["id"], c["id"], "astar")
    assert second.json() == {"nodes": [a["id"], c["id"]], "edges": [shortcut["id"]], "cost": 0.5}
    assert (await _path(client, admin_headers, c["id"], a["id"], "bfs")).status_code == 404
    same = await _path(client, admin_headers, a["id"], a["id"], "bfs")
    assert same.json() == {"nodes": [a["id"]], "edges": [], "cost": 0.0}
    await client.delete(f"{BASE}/nodes/{b['id']}", headers=admin_headers)
    gone = await _path(client, admin_headers, b["id"], c["id"], "bfs")
    assert gone.status_code == 404
    assert (await _path(client, admin_headers, a["id"], c["id"], "bellman")).status_code == 422
    missing = await client.get(f"{BASE}/path?from={a['id']}", headers=admin_headers)
    assert missing.status_code == 422


@pytest.mark.parametrize(("nodes", "edges", "seed"), [(50, 200, 3), (120, 400, 4)])
async def test_pagerank_agrees_with_networkx(client, admin_headers, nodes, edges, seed) -> None:
    graph = random_graph(nodes, edges, seed)
    graph.add_node("isolated")
    ids = await import_graph(client, admin_headers, graph)
    response = await client.get(f"{BASE}/pagerank?limit=10000", headers=admin_headers)
    assert response.status_code == 200, response.text
    scores = {s["node_id"]: s["score"] for s in response.json()["data"]}
    assert len(scores) == nodes + 1
    assert math.fsum(scores.values()) == pytest.approx(1.0, abs=1e-9)
    expected = nx.pagerank(graph, alpha=0.85, weight="weight")
    for key, value in expected.items():
        assert scores[ids[key]] == pytest.approx(value, abs=5e-4), key
    ranked = [s["score"] for s in response.json()["data"]]
    assert ranked == sorted(ranked, reverse=True)
    top = await client.get(f"{BASE}/pagerank?limit=3", headers=admin_headers)
    assert [s["node_id"] for s in top.json()["data"]] == list(scores)[:3]


async def test_communities_recover_planted_clusters(client, admin_headers) -> None:
    rng = random.Random(7)
    graph = nx.MultiDiGraph()
    clusters = [[f"c{c}n{i}" for i in range(8 + c)] for c in range(4)]
    for members in clusters:
        graph.add_nodes_from(members)
        for u, v in itertools.permutations(members, 2):
            if rng.random() < 0.6:
                graph.add_edge(u, v, weight=1.0)
    for first, second in itertools.combinations(clusters, 2):
        graph.add_edge(rng.choice(first), rng.choice(second), weight=1.0)
    ids = await import_graph(client, admin_headers, graph)
    key = {v: k for k, v in ids.items()}
    response = await client.get(f"{BASE}/communities", headers=admin_headers)
    assert response.status_code == 200, response.text
    found = response.json()["data"]
    assert {frozenset(key[n] for n in c["nodes"]) for c in found} == {
        frozenset(members) for members in clusters
    }
    assert [c["id"] for c in found] == ["0", "1", "2", "3"]
    assert [len(c["nodes"]) for c in found] == [11, 10, 9, 8]  # largest first
    again = await client.get(f"{BASE}/communities", headers=admin_headers)
    assert again.json() == response.json()  # a fixed seed: stable answers


async def test_similar_nodes_by_shared_neighbours(client, admin_headers) -> None:
    graph = nx.MultiDiGraph()
    for source, targets in {"a": "xyz", "b": "xyz", "c": "x", "d": "w"}.items():
        for target in targets:
            graph.add_edge(source, target, weight=1.0)
    graph.add_edge("z", "a", weight=1.0)  # direction does not matter, nor repeats
    ids = await import_graph(client, admin_headers, graph)
    key = {v: k for k, v in ids.items()}
    response = await client.get(f"{BASE}/nodes/{ids['a']}/similar", headers=admin_headers)
    assert response.status_code == 200, response.text
    hits = [(key[h["node_id"]], h["name"], round(h["score"], 4)) for h in response.json()["data"]]
    assert hits == [("b", "b", 1.0), ("c", "c", round(1 / 3, 4))]
    lonely = await client.get(f"{BASE}/nodes/{ids['d']}/similar", headers=admin_headers)
    assert lonely.json()["data"] == []
    limited = await client.get(f"{BASE}/nodes/{ids['a']}/similar?limit=1", headers=admin_headers)
    assert len(limited.json()["data"]) == 1


async def test_empty_graph(client, admin_headers) -> None:
    assert (await client.get(f"{BASE}/pagerank", headers=admin_headers)).json() == {"data": []}
    assert (await client.get(f"{BASE}/communities", headers=admin_headers)).json() == {"data": []}
    assert (await _path(client, admin_headers, "a", "b", "bfs")).status_code == 404
