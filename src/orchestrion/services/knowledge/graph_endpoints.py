"""HTTP routes for traversals, paths, ranking, communities, learning paths and search."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.http.deps import CurrentPrincipal, Session
from orchestrion.services.knowledge import analysis, search, service, traversal
from orchestrion.services.knowledge.analysis import GraphCache
from orchestrion.services.knowledge.responses import problems
from orchestrion.services.knowledge.schemas import (
    CommunityData,
    GraphPath,
    HitData,
    NodeData,
    ScoreData,
    SearchRequest,
)

router = APIRouter(prefix="/api/v1/knowledge", tags=["knowledge"])
#: Most neighbours one call returns, and the deepest walk.
MAX_NEIGHBORS = 1000
MAX_DEPTH = 10


def _graphs(request: Request) -> GraphCache:
    graphs: GraphCache = request.app.state.graphs
    return graphs


@router.get(
    "/nodes/{node_id}/neighbors",
    response_model=NodeData,
    responses=problems(404, 422),
    summary="Nodes within a number of edges",
)
async def neighbors(
    node_id: str,
    session: Session,
    principal: CurrentPrincipal,
    depth: Annotated[int, Query(ge=1, le=MAX_DEPTH)] = 1,
    direction: Literal["out", "in", "both"] = "both",
    type: Annotated[str | None, Query(description="Follow only edges of this type.")] = None,
    node_type: Annotated[str | None, Query(description="Return only nodes of this type.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_NEIGHBORS)] = 100,
) -> dict[str, Any]:
    """Each node once, nearest first, then by name (the start node is not included)."""
    principal.require(Permission.KNOWLEDGE_READ)
    found = await traversal.neighbors(
        session,
        principal=principal,
        node_id=node_id,
        depth=depth,
        direction=direction,
        edge_type=type,
        node_type=node_type,
        limit=limit,
    )
    return {"data": [service.node_to_dict(n) for n in found]}


@router.get(
    "/path",
    response_model=GraphPath,
    responses=problems(404, 422),
    summary="A shortest path between two nodes",
)
async def path(
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    source: Annotated[str, Query(alias="from")],
    target: Annotated[str, Query(alias="to")],
    algorithm: Literal["bfs", "dijkstra", "astar"] = "dijkstra",
) -> dict[str, Any]:
    """`bfs`: fewest edges; `dijkstra` and `astar`: least total weight. `cost` is the sum
    of the path's edge weights. No path (or an unknown node) is a 404."""
    principal.require(Permission.KNOWLEDGE_READ)
    return await analysis.path(
        session,
        principal=principal,
        graphs=_graphs(request),
        source=source,
        target=target,
        algorithm=algorithm,
    )


@router.get(
    "/pagerank", response_model=ScoreData, responses=problems(422), summary="PageRank scores"
)
async def pagerank(
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 20,
) -> dict[str, Any]:
    """The highest weighted PageRank scores (damping 0.85); over all nodes they sum to 1."""
    principal.require(Permission.KNOWLEDGE_READ)
    scores = await analysis.pagerank(
        session, principal=principal, graphs=_graphs(request), limit=limit
    )
    return {"data": scores}


@router.get(
    "/communities",
    response_model=CommunityData,
    responses=problems(),
    summary="Communities (Louvain)",
)
async def communities(
    request: Request, session: Session, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Every node in exactly one community, largest first."""
    principal.require(Permission.KNOWLEDGE_READ)
    found = await analysis.communities(session, principal=principal, graphs=_graphs(request))
    return {"data": found}


@router.get(
    "/learning-path",
    response_model=NodeData,
    responses=problems(404, 409, 422),
    summary="What to learn, in order, to reach a goal",
)
async def learning_path(
    session: Session,
    principal: CurrentPrincipal,
    goal: Annotated[str, Query(min_length=1)],
    known: Annotated[str, Query(description="Comma-separated ids already known.")] = "",
) -> dict[str, Any]:
    """Prerequisites along `requires` edges (source requires target), each before what
    requires it, known ones left out, the goal last; a cycle is a 409 naming its nodes."""
    principal.require(Permission.KNOWLEDGE_READ)
    found = await traversal.learning_path(
        session,
        principal=principal,
        goal_id=goal,
        known={k.strip() for k in known.split(",") if k.strip()},
    )
    return {"data": [service.node_to_dict(n) for n in found]}


@router.post(
    "/search", response_model=HitData, responses=problems(422, 503), summary="Search nodes"
)
async def search_nodes(
    data: SearchRequest, request: Request, session: Session, principal: CurrentPrincipal
) -> dict[str, Any]:
    """`keyword`: BM25 over names and texts (score: BM25). `semantic`: cosine between the
    query's and each node's embedding (score: cosine, -1 to 1). `hybrid`: both rankings
    fused by reciprocal rank (score: the RRF sum, k = 60). Without an embedding provider
    `semantic` and `hybrid` answer 422; a provider that is down answers 503."""
    principal.require(Permission.KNOWLEDGE_READ)
    hits = await search.search(
        session,
        principal=principal,
        request=data,
        embedder=request.app.state.embedder,
        vectors=request.app.state.vectors,
    )
    return {"data": hits}


@router.get(
    "/nodes/{node_id}/similar",
    response_model=HitData,
    responses=problems(404, 422),
    summary="Nodes similar to a node",
)
async def similar(
    node_id: str,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """Nodes sharing neighbours with this one, by Jaccard index of their neighbourhoods
    (edges in either direction)."""
    principal.require(Permission.KNOWLEDGE_READ)
    found = await analysis.similar(
        session, principal=principal, graphs=_graphs(request), node_id=node_id, limit=limit
    )
    return {"data": found}
