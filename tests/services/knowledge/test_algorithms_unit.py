"""The in-memory algorithms against NetworkX on larger generated graphs (no HTTP)."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from orchestrion.services.knowledge.algorithms import Graph


def _generated(nodes: int, edges: int, seed: int) -> tuple[Graph, nx.MultiDiGraph, list[str]]:
    rng = random.Random(seed)
    ids = [f"{i:08d}-0000-7000-8000-000000000000" for i in range(nodes)]
    rows = []
    reference = nx.MultiDiGraph()
    reference.add_nodes_from(range(nodes))
    for e in range(edges):
        u, v = rng.randrange(nodes), rng.randrange(nodes)
        w = rng.choice([0.0, 1.0, 2.0, round(rng.uniform(0.1, 5), 3)])
        rows.append((f"{e:08d}-1111-7000-8000-000000000000", ids[u], ids[v], w))
        reference.add_edge(u, v, weight=w)
    return Graph.build(list(reversed(ids)), rows), reference, ids


@pytest.mark.parametrize("seed", range(3))
def test_paths_and_pagerank_on_generated_graphs(seed: int) -> None:
    graph, reference, ids = _generated(400, 2400, seed)
    index = [graph.index_of(i) for i in ids]
    expected = nx.pagerank(reference, weight="weight")
    scores = graph.pagerank()
    assert scores.sum() == pytest.approx(1.0)
    assert max(abs(scores[index[n]] - p) for n, p in expected.items()) < 5e-4
    rng = random.Random(seed)
    for _ in range(40):
        s, t = rng.randrange(400), rng.randrange(400)
        try:
            least = nx.dijkstra_path_length(reference, s, t, weight="weight")
            hops = nx.shortest_path_length(reference, s, t)
        except nx.NetworkXNoPath:
            assert graph.bfs(index[s], index[t]) is None
            assert graph.dijkstra(index[s], index[t]) is None
            assert graph.astar(index[s], index[t]) is None
            continue
        assert len(graph.bfs(index[s], index[t]).edges) == hops
        assert graph.dijkstra(index[s], index[t]).cost == pytest.approx(least)
        assert graph.astar(index[s], index[t]).cost == pytest.approx(least)


def test_lookups() -> None:
    graph, _, ids = _generated(10, 5, 0)
    assert graph.index_of("missing") is None
    assert [graph.node_id(graph.index_of(i)) for i in ids] == ids
