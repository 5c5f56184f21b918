"""Rules of the knowledge service for nodes and edges: tenancy, indexing, import, export.

Every node and edge belongs to the caller's tenant; another tenant's is a 404, and an
edge may join only nodes of one tenant. Each change to the set of nodes or to the
edges, and each new name or text, bumps the tenant's graph revision in the same
transaction, so graphs loaded for algorithms (:mod:`.analysis`) and vector matrices
(:mod:`.semantic`) are reused exactly until the next change. With an embedder, a node's
vector is computed before the write and stored with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.embeddings import Embedder, Matrix
from orchestrion.kernel.ids import isoformat, new_id, utcnow
from orchestrion.services.knowledge import repository, semantic
from orchestrion.services.knowledge.errors import (
    EdgeNotFound,
    InvalidEdge,
    InvalidImport,
    NodeNotFound,
)
from orchestrion.services.knowledge.models import KgEdge, KgNode, KgTerm
from orchestrion.services.knowledge.schemas import (
    EdgeCreate,
    ImportRequest,
    NodeCreate,
    NodeUpdate,
)
from orchestrion.services.knowledge.text import index_terms

#: How many problems an import's 422 lists (it names them all in ``detail`` up to this).
MAX_REPORTED = 20


def node_to_dict(node: KgNode) -> dict[str, Any]:
    """The public JSON of a node."""
    return {
        "id": node.id,
        "tenant_id": node.tenant_id,
        "type": node.type,
        "name": node.name,
        "text": node.text,
        "properties": node.properties,
        "created_at": isoformat(node.created_at),
        "updated_at": isoformat(node.updated_at),
    }


def edge_to_dict(edge: KgEdge) -> dict[str, Any]:
    """The public JSON of an edge."""
    return {
        "id": edge.id,
        "tenant_id": edge.tenant_id,
        "source": edge.source,
        "target": edge.target,
        "type": edge.type,
        "weight": edge.weight,
        "properties": edge.properties,
        "created_at": isoformat(edge.created_at),
    }


def _term_rows(node_id: str, tenant_id: str, terms: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {"node_id": node_id, "term": term, "tenant_id": tenant_id, "tf": tf}
        for term, tf in terms.items()
    ]


async def create_node(
    session: AsyncSession,
    *,
    principal: Principal,
    data: NodeCreate,
    embedder: Embedder | None = None,
) -> KgNode:
    """Store a node and index its name and text (and embed them, with an embedder)."""
    vectors = await semantic.vectors_for(embedder, [semantic.node_text(data.name, data.text)])
    terms, length = index_terms(data.name, data.text)
    node = KgNode(
        id=new_id(),
        tenant_id=principal.tenant_id,
        type=data.type,
        name=data.name,
        text=data.text,
        properties=data.properties,
        length=length,
    )
    session.add(node)
    await session.flush()
    await repository.insert_rows(session, KgTerm, _term_rows(node.id, node.tenant_id, terms))
    if embedder is not None and vectors is not None:
        await semantic.store(
            session,
            embedder=embedder,
            tenant_id=node.tenant_id,
            node_ids=[node.id],
            vectors=vectors,
        )
    await repository.bump_revision(session, tenant_id=node.tenant_id)
    return node


async def get_node(session: AsyncSession, *, principal: Principal, node_id: str) -> KgNode:
    """A node of the caller's tenant; 404 otherwise."""
    node = await repository.get_node(session, tenant_id=principal.tenant_id, node_id=node_id)
    if node is None:
        raise NodeNotFound(f"node '{node_id}' not found")
    return node


async def update_node(
    session: AsyncSession, *, node: KgNode, changes: NodeUpdate, embedder: Embedder | None = None
) -> KgNode:
    """Replace the fields ``changes`` sets; a new name or text is indexed (and embedded)
    again."""
    values = changes.model_dump(exclude_unset=True, exclude_none=True)
    retext = ("name" in values and values["name"] != node.name) or (
        "text" in values and values["text"] != node.text
    )
    name, text = values.get("name", node.name), values.get("text", node.text)
    vectors = (
        await semantic.vectors_for(embedder, [semantic.node_text(name, text)]) if retext else None
    )
    for key, value in values.items():
        setattr(node, key, value)
    if "name" in values or "text" in values:
        terms, node.length = index_terms(node.name, node.text)
        await repository.delete_terms(session, node_id=node.id)
        await repository.insert_rows(session, KgTerm, _term_rows(node.id, node.tenant_id, terms))
    if retext:
        # The old vectors describe the old text; without a new one the next search
        # computes it.
        await repository.delete_embeddings(session, node_id=node.id)
        await semantic.store(
            session, embedder=embedder, tenant_id=node.tenant_id, node_ids=[node.id],
            vectors=vectors,
        )  # fmt: skip
        await repository.bump_revision(session, tenant_id=node.tenant_id)
    node.updated_at = utcnow()
    await session.flush()
    return node


async def delete_node(session: AsyncSession, *, node: KgNode) -> None:
    """Delete a node with its edges."""
    await repository.delete_node(session, node_id=node.id)
    await repository.bump_revision(session, tenant_id=node.tenant_id)


async def create_edge(session: AsyncSession, *, principal: Principal, data: EdgeCreate) -> KgEdge:
    """Store an edge between two nodes of the caller's tenant (422 naming a missing end)."""
    ends = {data.source, data.target}
    found = await repository.existing_ids(session, tenant_id=principal.tenant_id, ids=ends)
    missing = [(field, value) for field, value in (("source", data.source), ("target", data.target))
               if value not in found]  # fmt: skip
    if missing:
        raise InvalidEdge(
            "; ".join(f"{field} '{value}' is not a node" for field, value in missing),
            errors=[{"loc": ["body", field], "msg": "no such node"} for field, _ in missing],
        )
    edge = KgEdge(
        id=new_id(),
        tenant_id=principal.tenant_id,
        source=data.source,
        target=data.target,
        type=data.type,
        weight=data.weight,
        properties=data.properties,
        created_at=utcnow(),
    )
    session.add(edge)
    await session.flush()
    await repository.bump_revision(session, tenant_id=edge.tenant_id)
    return edge


async def get_edge(session: AsyncSession, *, principal: Principal, edge_id: str) -> KgEdge:
    """An edge of the caller's tenant; 404 otherwise."""
    edge = await repository.get_edge(session, tenant_id=principal.tenant_id, edge_id=edge_id)
    if edge is None:
        raise EdgeNotFound(f"edge '{edge_id}' not found")
    return edge


async def delete_edge(session: AsyncSession, *, edge: KgEdge) -> None:
    """Delete an edge."""
    await repository.delete_edge(session, edge_id=edge.id)
    await repository.bump_revision(session, tenant_id=edge.tenant_id)


async def _resolve_ends(
    session: AsyncSession, *, tenant_id: str, data: ImportRequest, ids: dict[str, str]
) -> dict[str, str]:
    """Every edge end mapped to a node id: a key of this import, else an existing node."""
    others = {e for edge in data.edges for e in (edge.source, edge.target)} - ids.keys()
    existing = await repository.existing_ids(session, tenant_id=tenant_id, ids=others)
    problems: list[dict[str, Any]] = []
    for i, edge in enumerate(data.edges):
        for field, value in (("source", edge.source), ("target", edge.target)):
            if value not in ids and value not in existing:
                problems.append(
                    {"loc": ["body", "edges", i, field], "msg": f"unknown node key '{value}'"}
                )
    if problems:
        named = sorted({str(p["msg"]).removeprefix("unknown node key ") for p in problems})
        raise InvalidImport(
            f"edges name unknown node keys: {', '.join(named[:MAX_REPORTED])}; nothing was stored",
            errors=problems[:MAX_REPORTED],
        )
    return {**{value: value for value in existing}, **ids}


async def import_vectors(*, data: ImportRequest, embedder: Embedder | None) -> Matrix | None:
    """The vectors of an import's nodes, in its order (None: stored without, filled in
    at the tenant's next semantic search). Computed before the import's transaction."""
    return await semantic.vectors_for(
        embedder, [semantic.node_text(node.name, node.text) for node in data.nodes]
    )


async def import_graph(
    session: AsyncSession,
    *,
    principal: Principal,
    data: ImportRequest,
    embedder: Embedder | None = None,
    vectors: Matrix | None = None,
) -> dict[str, Any]:
    """Store an import's nodes and edges, all or nothing (checked before any write);
    with an embedder, the nodes' ``vectors`` too (see :func:`import_vectors`)."""
    tenant_id = principal.tenant_id
    ids: dict[str, str] = {}
    duplicates: list[dict[str, Any]] = []
    for i, node in enumerate(data.nodes):
        if node.key in ids:
            duplicates.append(
                {"loc": ["body", "nodes", i, "key"], "msg": f"duplicate key '{node.key}'"}
            )
        ids[node.key] = new_id()
    if duplicates:
        raise InvalidImport(
            "node keys must be unique; nothing was stored", errors=duplicates[:MAX_REPORTED]
        )
    ends = await _resolve_ends(session, tenant_id=tenant_id, data=data, ids=ids)
    now = utcnow()
    node_rows: list[dict[str, Any]] = []
    term_rows: list[dict[str, Any]] = []
    for node in data.nodes:
        node_id = ids[node.key]
        terms, length = index_terms(node.name, node.text)
        node_rows.append(
            {
                "id": node_id, "tenant_id": tenant_id, "type": node.type, "name": node.name,
                "text": node.text, "properties": node.properties, "length": length,
                "created_at": now, "updated_at": now,
            }
        )  # fmt: skip
        term_rows.extend(_term_rows(node_id, tenant_id, terms))
    edge_rows = [
        {
            "id": new_id(), "tenant_id": tenant_id, "source": ends[edge.source],
            "target": ends[edge.target], "type": edge.type, "weight": edge.weight,
            "properties": edge.properties, "created_at": now,
        }
        for edge in data.edges
    ]  # fmt: skip
    await repository.insert_rows(session, KgNode, node_rows)
    await repository.insert_rows(session, KgTerm, term_rows)
    await repository.insert_rows(session, KgEdge, edge_rows)
    node_ids = [ids[node.key] for node in data.nodes]
    await semantic.store(
        session, embedder=embedder, tenant_id=tenant_id, node_ids=node_ids, vectors=vectors
    )
    if node_rows or edge_rows:
        await repository.bump_revision(session, tenant_id=tenant_id)
    return {"nodes": len(node_rows), "edges": len(edge_rows), "ids": ids}


async def export_json(session: AsyncSession, *, principal: Principal) -> dict[str, Any]:
    """The tenant's graph; each node's ``key`` is its id, so the export can be imported."""
    nodes = await repository.all_nodes(session, tenant_id=principal.tenant_id)
    edges = await repository.all_edges(session, tenant_id=principal.tenant_id)
    return {
        "nodes": [{"key": node.id, **node_to_dict(node)} for node in nodes],
        "edges": [edge_to_dict(edge) for edge in edges],
    }


async def export_graphml(session: AsyncSession, *, principal: Principal) -> Iterator[str]:
    """The tenant's graph as GraphML lines (properties as JSON text: GraphML is flat)."""
    import networkx as nx  # only the export needs it: not loaded with the service

    graph = nx.MultiDiGraph()
    for node in await repository.all_nodes(session, tenant_id=principal.tenant_id):
        graph.add_node(
            node.id,
            type=node.type,
            name=node.name,
            text=node.text,
            properties=json.dumps(node.properties, sort_keys=True),
        )
    for edge in await repository.all_edges(session, tenant_id=principal.tenant_id):
        graph.add_edge(
            edge.source,
            edge.target,
            key=edge.id,
            type=edge.type,
            weight=edge.weight,
            properties=json.dumps(edge.properties, sort_keys=True),
        )
    lines: Iterator[str] = nx.generate_graphml(graph)
    return lines
