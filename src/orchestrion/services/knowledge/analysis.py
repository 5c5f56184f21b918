"""Rules of the algorithms that need the whole graph: paths, PageRank, communities, similarity.

The tenant's graph is loaded into memory (:class:`~.algorithms.Graph`) and kept per
process, keyed by the tenant's graph revision: a request first reads the revision (one
indexed row), and loads the graph again only when it moved. Instances of a distributed
deployment each keep their own copy and stay right, since the revision is in the
database. CPU-heavy work runs in a thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.principal import Principal
from orchestrion.services.knowledge import repository
from orchestrion.services.knowledge.errors import NodeNotFound, PathNotFound

if TYPE_CHECKING:
    from orchestrion.services.knowledge.algorithms import Graph, Path

Algorithm = Literal["bfs", "dijkstra", "astar"]


class GraphCache:
    """The last few tenants' loaded graphs, each with the revision it was loaded at."""

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self._graphs: OrderedDict[str, tuple[int, Graph]] = OrderedDict()
        self._loading: dict[str, asyncio.Lock] = {}
        self.loads = 0

    async def graph(self, session: AsyncSession, *, tenant_id: str) -> Graph:
        """The tenant's current graph, loaded again only if it changed since last time."""
        # The revision is read before the rows: a change landing in between makes the
        # cached graph newer than its revision, never older, and the next read reloads.
        revision = await repository.revision(session, tenant_id=tenant_id)
        # One load per tenant at a time: concurrent first calls wait for it rather than
        # each holding a copy of a large graph.
        async with self._loading.setdefault(tenant_id, asyncio.Lock()):
            cached = self._graphs.get(tenant_id)
            if cached is not None and cached[0] >= revision:
                self._graphs.move_to_end(tenant_id)
                return cached[1]
            node_ids, edges = await repository.structure(session, tenant_id=tenant_id)
            # SciPy and networkx load with the first graph, not with the service.
            from orchestrion.services.knowledge.algorithms import Graph

            graph = await asyncio.to_thread(Graph.build, node_ids, edges)
            self.loads += 1
            self._graphs[tenant_id] = (revision, graph)
            self._graphs.move_to_end(tenant_id)
            while len(self._graphs) > self.capacity:
                evicted, _ = self._graphs.popitem(last=False)
                self._loading.pop(evicted, None)
            return graph


def _index(graph: Graph, node_id: str) -> int:
    index = graph.index_of(node_id)
    if index is None:
        raise NodeNotFound(f"node '{node_id}' not found")
    return index


async def path(
    session: AsyncSession,
    *,
    principal: Principal,
    graphs: GraphCache,
    source: str,
    target: str,
    algorithm: Algorithm,
) -> dict[str, Any]:
    """A path from ``source`` to ``target``; 404 when either is unknown or none exists."""
    graph = await graphs.graph(session, tenant_id=principal.tenant_id)
    start, goal = _index(graph, source), _index(graph, target)
    search = {"bfs": graph.bfs, "dijkstra": graph.dijkstra, "astar": graph.astar}[algorithm]
    found: Path | None = await asyncio.to_thread(search, start, goal)
    if found is None:
        raise PathNotFound(f"no path from '{source}' to '{target}'")
    return {
        "nodes": [graph.node_id(i) for i in found.nodes],
        "edges": [graph.edge_id(e) for e in found.edges],
        "cost": found.cost,
    }


async def pagerank(
    session: AsyncSession, *, principal: Principal, graphs: GraphCache, limit: int
) -> list[dict[str, Any]]:
    """The ``limit`` highest PageRank scores (over all nodes, they sum to 1)."""
    graph = await graphs.graph(session, tenant_id=principal.tenant_id)
    scores = await asyncio.to_thread(graph.pagerank)
    order = np.argsort(-scores, kind="stable")[:limit].tolist()
    return [{"node_id": graph.node_id(i), "score": float(scores[i])} for i in order]


async def communities(
    session: AsyncSession, *, principal: Principal, graphs: GraphCache
) -> list[dict[str, Any]]:
    """Louvain communities, largest first; ids are their rank in that order."""
    graph = await graphs.graph(session, tenant_id=principal.tenant_id)
    groups = await asyncio.to_thread(graph.communities)
    return [
        {"id": str(rank), "nodes": [graph.node_id(i) for i in group]}
        for rank, group in enumerate(groups)
    ]


async def similar(
    session: AsyncSession, *, principal: Principal, graphs: GraphCache, node_id: str, limit: int
) -> list[dict[str, Any]]:
    """Nodes whose neighbourhoods overlap this node's most (Jaccard), best first."""
    graph = await graphs.graph(session, tenant_id=principal.tenant_id)
    found = await asyncio.to_thread(graph.similar, _index(graph, node_id), limit)
    ids = [graph.node_id(i) for i, _ in found]
    names = await repository.names(session, tenant_id=principal.tenant_id, ids=ids)
    hits: list[dict[str, Any]] = [
        {"node_id": other, "name": names.get(other, ""), "score": score}
        for other, (_, score) in zip(ids, found, strict=True)
    ]
    hits.sort(key=lambda hit: (-hit["score"], hit["name"], hit["node_id"]))
    return hits
