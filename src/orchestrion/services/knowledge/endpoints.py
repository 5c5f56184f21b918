"""HTTP routes for nodes, edges, import and export: requests to service calls, nothing more."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.embeddings import Embedder
from orchestrion.kernel.http.deps import CurrentPrincipal, Db, Session
from orchestrion.kernel.http.etag import check_if_match, resource_response
from orchestrion.kernel.http.idempotency import HEADER, run_idempotent
from orchestrion.kernel.http.lists import (
    ListPage,
    fetch_page,
    list_body,
    list_parameters,
    parse_list_query,
)
from orchestrion.services.knowledge import repository, service
from orchestrion.services.knowledge.responses import problems
from orchestrion.services.knowledge.schemas import (
    Edge,
    EdgeCreate,
    GraphExport,
    ImportRequest,
    ImportResult,
    Node,
    NodeCreate,
    NodeUpdate,
)

router = APIRouter(prefix="/api/v1/knowledge", tags=["knowledge"])
_GRAPHML = "application/graphml+xml"


def _embedder(request: Request) -> Embedder | None:
    embedder: Embedder | None = request.app.state.embedder
    return embedder


async def _created(
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
    data: BaseModel,
    produce: Any,
    location: str | None,
) -> Response:
    # The body is hashed only when a key asks for it: an import can be large.
    keyed = request.headers.get(HEADER) is not None
    response = await run_idempotent(
        session,
        request=request,
        scope=f"{principal.tenant_id}:{principal.subject}:POST:{request.url.path}",
        payload=data.model_dump(mode="json") if keyed else None,
        produce=produce,
    )
    if location is not None and response.status_code == 201:
        response.headers["Location"] = f"{location}/{json.loads(bytes(response.body))['id']}"
    return response


@router.post(
    "/nodes",
    status_code=201,
    response_model=Node,
    responses=problems(409, 422),
    summary="Create a node",
)
async def create_node(
    data: NodeCreate, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """A typed node with a name, optional text (searched) and properties."""
    principal.require(Permission.KNOWLEDGE_WRITE)

    async def produce() -> tuple[int, Any]:
        node = await service.create_node(
            session, principal=principal, data=data, embedder=_embedder(request)
        )
        return 201, service.node_to_dict(node)

    return await _created(request, session, principal, data, produce, "/api/v1/knowledge/nodes")


@router.get(
    "/nodes",
    response_model=ListPage[Node],
    openapi_extra=list_parameters(repository.NODE_LIST),
    responses=problems(400),
    summary="List nodes",
)
async def list_nodes(request: Request, session: Session, principal: CurrentPrincipal) -> Response:
    """Nodes of the caller's tenant; filters `type`, `name`."""
    principal.require(Permission.KNOWLEDGE_READ)
    query = parse_list_query(request, repository.NODE_LIST)
    page = await fetch_page(
        session, repository.nodes_of(principal.tenant_id), repository.NODE_LIST, query
    )
    items = [service.node_to_dict(n) for n in page.rows]
    return JSONResponse(list_body(request, items, query, page))


@router.get("/nodes/{node_id}", response_model=Node, responses=problems(404), summary="Get a node")
async def get_node(
    node_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """One node, with its ETag."""
    principal.require(Permission.KNOWLEDGE_READ)
    node = await service.get_node(session, principal=principal, node_id=node_id)
    return resource_response(request, service.node_to_dict(node))


@router.patch(
    "/nodes/{node_id}",
    response_model=Node,
    responses=problems(404, 412, 422),
    summary="Change a node",
)
async def patch_node(
    node_id: str,
    changes: NodeUpdate,
    request: Request,
    session: Session,
    principal: CurrentPrincipal,
) -> Response:
    """Replace the fields given (`properties` whole); `If-Match` honoured."""
    principal.require(Permission.KNOWLEDGE_WRITE)
    node = await service.get_node(session, principal=principal, node_id=node_id)
    check_if_match(request, service.node_to_dict(node))
    node = await service.update_node(
        session, node=node, changes=changes, embedder=_embedder(request)
    )
    return resource_response(request, service.node_to_dict(node))


@router.delete(
    "/nodes/{node_id}", status_code=204, responses=problems(404, 412), summary="Delete a node"
)
async def delete_node(
    node_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Delete a node and every edge touching it; `If-Match` honoured."""
    principal.require(Permission.KNOWLEDGE_WRITE)
    node = await service.get_node(session, principal=principal, node_id=node_id)
    check_if_match(request, service.node_to_dict(node))
    await service.delete_node(session, node=node)
    return Response(status_code=204)


@router.post(
    "/edges",
    status_code=201,
    response_model=Edge,
    responses=problems(409, 422),
    summary="Create an edge",
)
async def create_edge(
    data: EdgeCreate, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """A typed, weighted edge from `source` to `target` (nodes of the caller's tenant)."""
    principal.require(Permission.KNOWLEDGE_WRITE)

    async def produce() -> tuple[int, Any]:
        edge = await service.create_edge(session, principal=principal, data=data)
        return 201, service.edge_to_dict(edge)

    return await _created(request, session, principal, data, produce, "/api/v1/knowledge/edges")


@router.get(
    "/edges",
    response_model=ListPage[Edge],
    openapi_extra=list_parameters(repository.EDGE_LIST),
    responses=problems(400),
    summary="List edges",
)
async def list_edges(request: Request, session: Session, principal: CurrentPrincipal) -> Response:
    """Edges of the caller's tenant; filters `source`, `target`, `type`."""
    principal.require(Permission.KNOWLEDGE_READ)
    query = parse_list_query(request, repository.EDGE_LIST)
    page = await fetch_page(
        session, repository.edges_of(principal.tenant_id), repository.EDGE_LIST, query
    )
    items = [service.edge_to_dict(e) for e in page.rows]
    return JSONResponse(list_body(request, items, query, page))


@router.get("/edges/{edge_id}", response_model=Edge, responses=problems(404), summary="Get an edge")
async def get_edge(
    edge_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """One edge, with its ETag."""
    principal.require(Permission.KNOWLEDGE_READ)
    edge = await service.get_edge(session, principal=principal, edge_id=edge_id)
    return resource_response(request, service.edge_to_dict(edge))


@router.delete(
    "/edges/{edge_id}", status_code=204, responses=problems(404, 412), summary="Delete an edge"
)
async def delete_edge(
    edge_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Delete an edge; `If-Match` honoured."""
    principal.require(Permission.KNOWLEDGE_WRITE)
    edge = await service.get_edge(session, principal=principal, edge_id=edge_id)
    check_if_match(request, service.edge_to_dict(edge))
    await service.delete_edge(session, edge=edge)
    return Response(status_code=204)


@router.post(
    "/import",
    response_model=ImportResult,
    responses=problems(409, 413, 422),
    summary="Import nodes and edges, all or nothing",
)
async def import_graph(
    data: ImportRequest, request: Request, database: Db, principal: CurrentPrincipal
) -> Response:
    """Nodes named by keys and edges between keys (or ids of existing nodes), in one
    transaction: an edge naming an unknown key is a 422 naming it, and nothing is stored."""
    principal.require(Permission.KNOWLEDGE_WRITE)
    # The vectors first, outside the transaction: embedding thousands of nodes takes
    # seconds, and a session holds SQLite's writer lock for its whole life.
    vectors = await service.import_vectors(data=data, embedder=_embedder(request))
    async with database.session() as session:

        async def produce() -> tuple[int, Any]:
            return 200, await service.import_graph(
                session,
                principal=principal,
                data=data,
                embedder=_embedder(request),
                vectors=vectors,
            )

        return await _created(request, session, principal, data, produce, None)


@router.get(
    "/export",
    response_model=GraphExport,
    responses={
        **problems(422),
        200: {"content": {_GRAPHML: {"schema": {"type": "string"}}}},
    },
    summary="Export the graph as JSON or GraphML",
)
async def export_graph(
    session: Session,
    principal: CurrentPrincipal,
    format: Annotated[Literal["json", "graphml"], Query()] = "json",
) -> Response:
    """The whole graph of the caller's tenant. JSON nodes carry `key` (their id) so an
    export imports as it is; GraphML (NetworkX, Gephi) carries properties as JSON text."""
    principal.require(Permission.KNOWLEDGE_READ)
    if format == "graphml":
        lines = await service.export_graphml(session, principal=principal)
        return StreamingResponse(
            (line + "\n" for line in lines),
            media_type=_GRAPHML,
            headers={"Content-Disposition": 'attachment; filename="knowledge.graphml"'},
        )
    return JSONResponse(await service.export_json(session, principal=principal))
