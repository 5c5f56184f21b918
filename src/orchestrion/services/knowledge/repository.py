"""Queries of the knowledge service."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any, Literal

from sqlalchemy import Select, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.http.lists import ListSpec, equals
from orchestrion.kernel.ids import utcnow
from orchestrion.services.knowledge.models import KgEdge, KgEmbedding, KgGraph, KgNode, KgTerm
from orchestrion.services.knowledge.text import Posting

Direction = Literal["out", "in", "both"]
#: Ids per ``IN (...)``: well under SQLite's and asyncpg's parameter limits.
CHUNK = 500

NODE_LIST = ListSpec(
    sortable={
        "created_at": KgNode.created_at,
        "updated_at": KgNode.updated_at,
        "name": KgNode.name,
        "type": KgNode.type,
    },
    filters={"type": equals(KgNode.type), "name": equals(KgNode.name)},
    fields=frozenset(
        {"id", "tenant_id", "type", "name", "text", "properties", "created_at", "updated_at"}
    ),
    id_column=KgNode.id,
)

EDGE_LIST = ListSpec(
    sortable={"created_at": KgEdge.created_at, "type": KgEdge.type, "weight": KgEdge.weight},
    filters={
        "source": equals(KgEdge.source),
        "target": equals(KgEdge.target),
        "type": equals(KgEdge.type),
    },
    fields=frozenset(
        {"id", "tenant_id", "source", "target", "type", "weight", "properties", "created_at"}
    ),
    id_column=KgEdge.id,
)


def chunks(values: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    """``values`` in slices of at most ``size``."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def nodes_of(tenant_id: str) -> Select[KgNode]:
    """Every node of a tenant."""
    return select(KgNode).where(KgNode.tenant_id == tenant_id)


def edges_of(tenant_id: str) -> Select[KgEdge]:
    """Every edge of a tenant."""
    return select(KgEdge).where(KgEdge.tenant_id == tenant_id)


async def get_node(session: AsyncSession, *, tenant_id: str, node_id: str) -> KgNode | None:
    """A node of the tenant, or None (another tenant's is None too)."""
    result = await session.execute(nodes_of(tenant_id).where(KgNode.id == node_id))
    return result.scalar_one_or_none()


async def get_edge(session: AsyncSession, *, tenant_id: str, edge_id: str) -> KgEdge | None:
    """An edge of the tenant, or None."""
    result = await session.execute(edges_of(tenant_id).where(KgEdge.id == edge_id))
    return result.scalar_one_or_none()


async def nodes_by_id(
    session: AsyncSession, *, tenant_id: str, ids: Collection[str]
) -> dict[str, KgNode]:
    """The tenant's nodes among ``ids``, by id."""
    found: dict[str, KgNode] = {}
    for part in chunks(list(ids)):
        result = await session.execute(nodes_of(tenant_id).where(KgNode.id.in_(part)))
        found.update((node.id, node) for node in result.scalars())
    return found


async def existing_ids(session: AsyncSession, *, tenant_id: str, ids: Collection[str]) -> set[str]:
    """Which of ``ids`` are nodes of the tenant."""
    found: set[str] = set()
    for part in chunks(list(ids)):
        result = await session.execute(
            select(KgNode.id).where(KgNode.tenant_id == tenant_id, KgNode.id.in_(part))
        )
        found.update(result.scalars())
    return found


async def names(session: AsyncSession, *, tenant_id: str, ids: Collection[str]) -> dict[str, str]:
    """Node names by id."""
    found: dict[str, str] = {}
    for part in chunks(list(ids)):
        result = await session.execute(
            select(KgNode.id, KgNode.name).where(KgNode.tenant_id == tenant_id, KgNode.id.in_(part))
        )
        found.update((row.id, row.name) for row in result)
    return found


async def insert_rows(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows in batches (one multi-row INSERT per batch)."""
    if rows:
        await session.execute(model.__table__.insert(), rows)


async def delete_terms(session: AsyncSession, *, node_id: str) -> None:
    """Drop a node's keyword postings (before indexing it again)."""
    await session.execute(delete(KgTerm).where(KgTerm.node_id == node_id))


async def delete_node(session: AsyncSession, *, node_id: str) -> None:
    """Delete a node; the database cascades to its edges and postings."""
    await session.execute(delete(KgNode).where(KgNode.id == node_id))


async def delete_edge(session: AsyncSession, *, edge_id: str) -> None:
    """Delete an edge."""
    await session.execute(delete(KgEdge).where(KgEdge.id == edge_id))


def _insert(session: AsyncSession) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_*`` on both databases."""
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def upsert_embeddings(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Store node vectors, replacing a node's vector of the same model (two writers
    computing the same missing vector do not collide)."""
    if not rows:
        return
    statement = _insert(session)(KgEmbedding)
    for part in range(0, len(rows), CHUNK // 5):
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[KgEmbedding.node_id, KgEmbedding.model],
                set_={"vector": statement.excluded.vector},
            ),
            rows[part : part + CHUNK // 5],
        )


async def delete_embeddings(session: AsyncSession, *, node_id: str) -> None:
    """Drop a node's vectors of every model (its name or text changed)."""
    await session.execute(delete(KgEmbedding).where(KgEmbedding.node_id == node_id))


async def embeddings(
    session: AsyncSession, *, tenant_id: str, model: str
) -> tuple[list[str], list[bytes]]:
    """Node ids and vector blobs of the tenant under ``model``, by node id."""
    result = await session.execute(
        select(KgEmbedding.node_id, KgEmbedding.vector)
        .where(KgEmbedding.tenant_id == tenant_id, KgEmbedding.model == model)
        .order_by(KgEmbedding.node_id)
    )
    ids: list[str] = []
    blobs: list[bytes] = []
    for node_id, vector in result:
        ids.append(node_id)
        blobs.append(bytes(vector))
    return ids, blobs


async def unembedded(
    session: AsyncSession, *, tenant_id: str, model: str
) -> list[tuple[str, str, str]]:
    """``(id, name, text)`` of the tenant's nodes without a vector under ``model``."""
    has_vector = (
        select(KgEmbedding.node_id)
        .where(KgEmbedding.node_id == KgNode.id, KgEmbedding.model == model)
        .exists()
    )
    result = await session.execute(
        select(KgNode.id, KgNode.name, KgNode.text)
        .where(KgNode.tenant_id == tenant_id, ~has_vector)
        .order_by(KgNode.id)
    )
    return [(row.id, row.name, row.text) for row in result]


async def bump_revision(session: AsyncSession, *, tenant_id: str) -> None:
    """Record that the tenant's graph changed (an upsert on both databases)."""
    now = utcnow()
    statement = _insert(session)(KgGraph).values(tenant_id=tenant_id, revision=1, updated_at=now)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[KgGraph.tenant_id],
            set_={"revision": KgGraph.revision + 1, "updated_at": now},
        )
    )


async def revision(session: AsyncSession, *, tenant_id: str) -> int:
    """The tenant's graph revision (0 before its first change)."""
    result = await session.execute(select(KgGraph.revision).where(KgGraph.tenant_id == tenant_id))
    return result.scalar_one_or_none() or 0


async def structure(
    session: AsyncSession, *, tenant_id: str
) -> tuple[list[str], list[tuple[str, str, str, float]]]:
    """Node ids and ``(id, source, target, weight)`` of every edge of the tenant."""
    node_ids = list(
        (await session.execute(select(KgNode.id).where(KgNode.tenant_id == tenant_id))).scalars()
    )
    result = await session.execute(
        select(KgEdge.id, KgEdge.source, KgEdge.target, KgEdge.weight).where(
            KgEdge.tenant_id == tenant_id
        )
    )
    return node_ids, [tuple(row) for row in result]  # type: ignore[misc]


async def steps(
    session: AsyncSession,
    *,
    tenant_id: str,
    frontier: Sequence[str],
    direction: Direction,
    edge_type: str | None,
) -> list[tuple[str, str]]:
    """``(from, to)`` for every edge leaving ``frontier`` in ``direction``."""
    found: list[tuple[str, str]] = []
    ways = [] if direction == "in" else [(KgEdge.source, KgEdge.target)]
    if direction != "out":
        ways.append((KgEdge.target, KgEdge.source))
    for near, far in ways:
        for part in chunks(frontier):
            statement = select(near, far).where(KgEdge.tenant_id == tenant_id, near.in_(part))
            if edge_type is not None:
                statement = statement.where(KgEdge.type == edge_type)
            found.extend((row[0], row[1]) for row in await session.execute(statement))
    return found


async def postings(session: AsyncSession, *, tenant_id: str, terms: Sequence[str]) -> list[Posting]:
    """The keyword postings of ``terms`` in the tenant's nodes, with each node's length."""
    if not terms:
        return []
    result = await session.execute(
        select(KgTerm.node_id, KgTerm.term, KgTerm.tf, KgNode.length)
        .join(KgNode, KgNode.id == KgTerm.node_id)
        .where(KgTerm.tenant_id == tenant_id, KgTerm.term.in_(list(terms)))
    )
    return [Posting(row.node_id, row.term, row.tf, row.length) for row in result]


async def corpus(session: AsyncSession, *, tenant_id: str) -> tuple[int, float]:
    """How many nodes the tenant has and their average indexed length."""
    result = await session.execute(
        select(func.count(), func.avg(KgNode.length)).where(KgNode.tenant_id == tenant_id)
    )
    count, average = result.one()
    return int(count), float(average or 0.0)


async def all_nodes(session: AsyncSession, *, tenant_id: str) -> list[KgNode]:
    """Every node of the tenant, oldest first."""
    result = await session.execute(nodes_of(tenant_id).order_by(KgNode.created_at, KgNode.id))
    return list(result.scalars())


async def all_edges(session: AsyncSession, *, tenant_id: str) -> list[KgEdge]:
    """Every edge of the tenant, oldest first."""
    result = await session.execute(edges_of(tenant_id).order_by(KgEdge.created_at, KgEdge.id))
    return list(result.scalars())


async def document(session: AsyncSession, *, tenant_id: str, content_id: str) -> KgNode | None:
    """The tenant's ``document`` node of a content item (the oldest, should there be two)."""
    result = await session.execute(
        nodes_of(tenant_id)
        .where(
            KgNode.type == "document",
            KgNode.properties["content_id"].as_string() == content_id,
        )
        .order_by(KgNode.created_at, KgNode.id)
        .limit(1)
    )
    return result.scalar_one_or_none()


async def links_from(session: AsyncSession, *, node_id: str) -> set[tuple[str, str]]:
    """``(target, type)`` of the edges leaving a node."""
    result = await session.execute(
        select(KgEdge.target, KgEdge.type).where(KgEdge.source == node_id)
    )
    return {(row.target, row.type) for row in result}


async def nodes_by_type_name(
    session: AsyncSession, *, tenant_id: str, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The id of the tenant's node of each ``(type, name)`` that exists (the oldest when
    several share both)."""
    wanted = set(pairs)
    found: dict[tuple[str, str], str] = {}
    names_wanted = sorted({name for _, name in wanted})
    for part in chunks(names_wanted):
        result = await session.execute(
            select(KgNode.id, KgNode.type, KgNode.name)
            .where(KgNode.tenant_id == tenant_id, KgNode.name.in_(part))
            .order_by(KgNode.created_at, KgNode.id)
        )
        for row in result:
            key = (row.type, row.name)
            if key in wanted:
                found.setdefault(key, row.id)
    return found
