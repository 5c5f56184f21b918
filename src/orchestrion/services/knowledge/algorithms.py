"""Graph algorithms on a tenant's graph loaded into memory.

:class:`Graph` holds the structure only, in arrays: node ids sorted (36-byte strings,
looked up by binary search), and per edge its id, source, target (node indices) and
weight. About 100 bytes per edge and 40 per node, so a million edges is ~100 MB; the
rows read from the database to build it cost a few times that, briefly.

- Paths run on the *lightest* adjacency: of parallel edges u→v only the lightest
  counts (BFS takes it too, so a path's cost is that of the edges it names).
  BFS and Dijkstra are SciPy's compiled ``csgraph`` routines; A* is ours, in Python,
  with the heuristic ``h(v) = w_min * hops(v -> target)``: ``w_min`` is the graph's
  lightest edge weight, ``hops`` comes from one BFS on the reversed graph. Every path
  from v has at least that many edges of at least that weight, so ``h`` never
  overestimates (admissible) and drops by at most one edge per step (consistent), and
  nodes that cannot reach the target at all are never expanded. Without coordinates
  no tighter bound is known to hold, and it is 0 when some edge weighs 0.
- PageRank is NetworkX's power iteration (``_pagerank_scipy``) with the same defaults
  (damping 0.85, at most 100 iterations, tolerance 1e-6 * nodes, dangling nodes
  spread uniformly, parallel edges' weights summed), so scores match ``nx.pagerank``.
- Communities are NetworkX's Louvain on the undirected graph (weights of parallel and
  opposite edges summed), with a fixed seed so the answer is stable.
- Similarity is the Jaccard index of undirected neighbourhoods.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import networkx as nx
import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import breadth_first_order, dijkstra, shortest_path

ID_DTYPE = "S36"
DAMPING = 0.85
MAX_ITERATIONS = 100
TOLERANCE = 1e-6
LOUVAIN_SEED = 42
_NO_PREDECESSOR = -9999


@dataclass(frozen=True)
class Path:
    """A path as node indices, edge indices and its total weight."""

    nodes: list[int]
    edges: list[int]
    cost: float


class Graph:
    """A directed multigraph of node and edge ids, weighted, in arrays."""

    def __init__(
        self,
        node_ids: np.ndarray[Any, Any],
        edge_ids: np.ndarray[Any, Any],
        src: np.ndarray[Any, Any],
        dst: np.ndarray[Any, Any],
        weight: np.ndarray[Any, Any],
    ) -> None:
        self.node_ids = node_ids
        self.edge_ids = edge_ids
        self.src = src
        self.dst = dst
        self.weight = weight

    @classmethod
    def build(cls, node_ids: list[str], edges: list[tuple[str, str, str, float]]) -> Graph:
        """A graph of ``node_ids`` and ``(edge id, source id, target id, weight)`` rows."""
        nodes = np.sort(np.array(node_ids, dtype=ID_DTYPE))
        if not edges:
            empty = np.zeros(0, dtype=np.int64)
            return cls(nodes, np.zeros(0, dtype=ID_DTYPE), empty, empty, np.zeros(0))
        ids, sources, targets, weights = zip(*edges, strict=True)
        src = np.searchsorted(nodes, np.array(sources, dtype=ID_DTYPE)).astype(np.int64)
        dst = np.searchsorted(nodes, np.array(targets, dtype=ID_DTYPE)).astype(np.int64)
        return cls(
            nodes,
            np.array(ids, dtype=ID_DTYPE),
            src,
            dst,
            np.array(weights, dtype=np.float64),
        )

    @property
    def size(self) -> int:
        """The number of nodes."""
        return len(self.node_ids)

    def index_of(self, node_id: str) -> int | None:
        """The index of ``node_id``, or None when the graph has no such node."""
        key = node_id.encode()
        i = int(np.searchsorted(self.node_ids, key))
        return i if i < self.size and self.node_ids[i] == key else None

    def node_id(self, index: int) -> str:
        """The id of the node at ``index``."""
        return str(self.node_ids[index].decode())

    def edge_id(self, index: int) -> str:
        """The id of the edge at ``index``."""
        return str(self.edge_ids[index].decode())

    @cached_property
    def lightest(self) -> tuple[csr_array, np.ndarray[Any, Any]]:
        """The adjacency keeping the lightest of parallel edges, and each entry's edge."""
        n = self.size
        order = np.lexsort((self.weight, self.dst, self.src))
        s, d = self.src[order], self.dst[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (s[1:] != s[:-1]) | (d[1:] != d[:-1])
        keep = order[first]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.src[keep], minlength=n), out=indptr[1:])
        matrix = csr_array((self.weight[keep], self.dst[keep], indptr), shape=(n, n))
        return matrix, keep

    @cached_property
    def adjacency_lists(self) -> tuple[list[int], list[int], list[float]]:
        """The lightest adjacency as Python lists: what a loop in Python reads fastest."""
        matrix, _ = self.lightest
        return matrix.indptr.tolist(), matrix.indices.tolist(), matrix.data.tolist()

    @cached_property
    def hops(self) -> csr_array:
        """The lightest adjacency with every weight 1 (for counting hops)."""
        matrix, _ = self.lightest
        return csr_array((np.ones(matrix.nnz), matrix.indices, matrix.indptr), shape=matrix.shape)

    def _edge_between(self, u: int, v: int) -> int:
        matrix, keep = self.lightest
        start, end = int(matrix.indptr[u]), int(matrix.indptr[u + 1])
        offset = int(np.searchsorted(matrix.indices[start:end], v))
        return int(keep[start + offset])

    def _path(self, nodes: list[int]) -> Path:
        edges = [self._edge_between(u, v) for u, v in itertools.pairwise(nodes)]
        return Path(nodes, edges, float(sum(self.weight[e] for e in edges)))

    def _walk_back(self, predecessors: np.ndarray[Any, Any], source: int, target: int) -> Path:
        nodes = [target]
        while nodes[-1] != source:
            nodes.append(int(predecessors[nodes[-1]]))
        nodes.reverse()
        return self._path(nodes)

    def bfs(self, source: int, target: int) -> Path | None:
        """A path of fewest edges, or None."""
        if source == target:
            return Path([source], [], 0.0)
        _, predecessors = breadth_first_order(
            self.hops, source, directed=True, return_predecessors=True
        )
        if predecessors[target] == _NO_PREDECESSOR:
            return None
        return self._walk_back(predecessors, source, target)

    def dijkstra(self, source: int, target: int) -> Path | None:
        """A path of least total weight, or None."""
        if source == target:
            return Path([source], [], 0.0)
        matrix, _ = self.lightest
        distances, predecessors = dijkstra(
            matrix, directed=True, indices=source, return_predecessors=True
        )
        if not np.isfinite(distances[target]):
            return None
        return self._walk_back(predecessors, source, target)

    def astar(self, source: int, target: int) -> Path | None:
        """A path of least total weight found by A* (heuristic in the module docstring)."""
        if source == target:
            return Path([source], [], 0.0)
        matrix, _ = self.lightest
        hops_to_target = shortest_path(
            self.hops.T.tocsr(), method="D", unweighted=True, indices=target
        )
        if not np.isfinite(hops_to_target[source]):
            return None
        lightest_weight = float(matrix.data.min()) if matrix.nnz else 0.0
        reachable = np.isfinite(hops_to_target)
        bounds = np.full(self.size, np.inf)
        bounds[reachable] = hops_to_target[reachable] * lightest_weight
        estimate: list[float] = bounds.tolist()
        indptr, indices, weights = self.adjacency_lists
        best = {source: 0.0}
        parent: dict[int, int] = {}
        done: set[int] = set()
        frontier = [(estimate[source], 0.0, source)]
        while frontier:
            _, cost, u = heapq.heappop(frontier)
            if u == target:
                nodes = [target]
                while nodes[-1] != source:
                    nodes.append(parent[nodes[-1]])
                nodes.reverse()
                return self._path(nodes)
            if u in done:
                continue
            done.add(u)
            for k in range(indptr[u], indptr[u + 1]):
                v = indices[k]
                h = estimate[v]
                if h == math.inf or v in done:
                    continue
                g = cost + weights[k]
                if g < best.get(v, math.inf):
                    best[v] = g
                    parent[v] = u
                    heapq.heappush(frontier, (g + h, g, v))
        return None

    def pagerank(self) -> np.ndarray[Any, Any]:
        """Weighted PageRank of every node (sums to 1), as NetworkX computes it."""
        n = self.size
        if n == 0:
            return np.zeros(0)
        matrix = csr_array((self.weight, (self.src, self.dst)), shape=(n, n))
        out_weight = np.asarray(matrix.sum(axis=1)).ravel()
        inverse = np.zeros(n)
        np.divide(1.0, out_weight, out=inverse, where=out_weight != 0)
        transition = csr_array(matrix.multiply(inverse[:, None]))
        dangling = np.where(out_weight == 0)[0]
        uniform = np.full(n, 1.0 / n)
        x = uniform.copy()
        for _ in range(MAX_ITERATIONS):
            last = x
            x = DAMPING * (x @ transition + x[dangling].sum() * uniform) + (1 - DAMPING) * uniform
            if np.abs(x - last).sum() < n * TOLERANCE:
                break
        scores: np.ndarray[Any, Any] = x / x.sum()
        return scores

    def _symmetric(self, values: np.ndarray[Any, Any]) -> csr_array:
        """``values`` of u-v edges in either direction summed, without self-loops."""
        n = self.size
        keep = self.src != self.dst
        matrix = csr_array((values[keep], (self.src[keep], self.dst[keep])), shape=(n, n))
        return csr_array(matrix + matrix.T)

    @cached_property
    def neighbourhoods(self) -> csr_array:
        """Who is adjacent to whom, ignoring direction, weight and self-loops."""
        return self._symmetric(np.ones(len(self.src)))

    def communities(self) -> list[list[int]]:
        """Louvain communities, largest first (then by smallest member)."""
        n = self.size
        if n == 0:
            return []
        upper = self._symmetric(self.weight).tocoo()
        mask = upper.row < upper.col
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        rows, cols, weights = upper.row[mask], upper.col[mask], upper.data[mask]
        graph.add_weighted_edges_from(
            zip(rows.tolist(), cols.tolist(), weights.tolist(), strict=True)
        )
        weighted = bool(weights.sum() > 0)
        found = nx.community.louvain_communities(
            graph, weight="weight" if weighted else None, seed=LOUVAIN_SEED
        )
        groups = [sorted(int(i) for i in group) for group in found]
        return sorted(groups, key=lambda group: (-len(group), group[0]))

    def similar(self, index: int, limit: int) -> list[tuple[int, float]]:
        """Nodes sharing neighbours with ``index``, by Jaccard index of neighbourhoods."""
        matrix = self.neighbourhoods
        indptr, indices = matrix.indptr, matrix.indices

        def around(i: int) -> np.ndarray[Any, Any]:
            found: np.ndarray[Any, Any] = indices[indptr[i] : indptr[i + 1]]
            return found

        mine = around(index)
        if len(mine) == 0:
            return []
        shared: Counter[int] = Counter()
        for neighbour in mine.tolist():
            shared.update(around(neighbour).tolist())
        shared.pop(index, None)
        scores = [
            (other, count / (len(mine) + len(around(other)) - count))
            for other, count in shared.items()
        ]
        scores.sort(key=lambda pair: (-pair[1], pair[0]))
        return scores[:limit]
