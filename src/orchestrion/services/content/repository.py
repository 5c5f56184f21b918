"""Queries of the content service, keyword search per database included."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, delete, exists, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.http.lists import ListSpec, equals
from orchestrion.kernel.ids import utcnow
from orchestrion.services.content.models import (
    FTS_TABLE,
    ContentChunk,
    ContentDocument,
    ContentRevision,
    ContentTag,
)

_TERM = re.compile(r"\w+", re.UNICODE)
#: Most words of a query sent to the keyword index.
MAX_QUERY_TERMS = 32


def _has_tag(value: str) -> Any:
    return exists().where(ContentTag.document_id == ContentDocument.id, ContentTag.tag == value)


CONTENT_LIST = ListSpec(
    sortable={
        "created_at": ContentDocument.created_at,
        "updated_at": ContentDocument.updated_at,
        "title": ContentDocument.title,
        "size": ContentDocument.size,
        "status": ContentDocument.status,
        "content_type": ContentDocument.content_type,
    },
    filters={
        "content_type": equals(ContentDocument.content_type),
        "status": equals(ContentDocument.status),
        "tag": _has_tag,
    },
    fields=frozenset(
        {
            "id",
            "tenant_id",
            "title",
            "content_type",
            "size",
            "sha256",
            "status",
            "error",
            "tags",
            "analysis",
            "created_at",
            "updated_at",
        }
    ),
    id_column=ContentDocument.id,
)

CHUNK_LIST = ListSpec(
    sortable={"index": ContentChunk.chunk_index},
    filters={},
    fields=frozenset({"index", "text", "start", "end"}),
    default_sort="index:asc",
    id_column=ContentChunk.id,
)


def documents_of(tenant_id: str) -> Select[ContentDocument]:
    """Every document of a tenant (the bytes and text are loaded only when read)."""
    return select(ContentDocument).where(ContentDocument.tenant_id == tenant_id)


def chunks_of(document_id: str) -> Select[ContentChunk]:
    """The chunks of a document."""
    return select(ContentChunk).where(ContentChunk.document_id == document_id)


async def get_document(
    session: AsyncSession, *, tenant_id: str, document_id: str
) -> ContentDocument | None:
    """A document of the tenant, or None (another tenant's is None too)."""
    result = await session.execute(documents_of(tenant_id).where(ContentDocument.id == document_id))
    return result.scalar_one_or_none()


async def get_for_processing(session: AsyncSession, *, document_id: str) -> ContentDocument | None:
    """A document by id alone (workers act for whichever tenant owns it)."""
    return await session.get(ContentDocument, document_id)


async def insert_rows(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows at once."""
    if rows:
        await session.execute(model.__table__.insert(), rows)


async def delete_document(session: AsyncSession, *, document_id: str) -> None:
    """Delete a document; the database cascades to its tags and chunks (and the
    keyword index follows its chunks)."""
    await session.execute(delete(ContentChunk).where(ContentChunk.document_id == document_id))
    await session.execute(delete(ContentDocument).where(ContentDocument.id == document_id))


async def set_embeddings(
    session: AsyncSession, *, document_id: str, blobs: Sequence[bytes]
) -> None:
    """Store the vectors of a document's chunks, by chunk index."""
    for index, blob in enumerate(blobs):
        await session.execute(
            update(ContentChunk)
            .where(ContentChunk.document_id == document_id, ContentChunk.chunk_index == index)
            .values(embedding=blob)
        )


async def bump_revision(session: AsyncSession, *, tenant_id: str) -> None:
    """Record that the tenant's chunks changed (an upsert on both databases)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    statement = insert(ContentRevision).values(tenant_id=tenant_id, revision=1, updated_at=now)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[ContentRevision.tenant_id],
            set_={"revision": ContentRevision.revision + 1, "updated_at": now},
        )
    )


async def revision(session: AsyncSession, *, tenant_id: str) -> int:
    """The tenant's chunk revision (0 before its first chunk)."""
    result = await session.execute(
        select(ContentRevision.revision).where(ContentRevision.tenant_id == tenant_id)
    )
    return result.scalar_one_or_none() or 0


async def vectors(session: AsyncSession, *, tenant_id: str, size: int) -> list[tuple[int, bytes]]:
    """``(chunk id, vector bytes)`` of the tenant's chunks embedded at ``size`` bytes."""
    result = await session.execute(
        select(ContentChunk.id, ContentChunk.embedding).where(
            ContentChunk.tenant_id == tenant_id, ContentChunk.embedding.is_not(None)
        )
    )
    return [(row[0], row[1]) for row in result if row[1] is not None and len(row[1]) == size]


async def hits(
    session: AsyncSession, *, tenant_id: str, chunk_ids: Sequence[int]
) -> dict[int, tuple[str, int, str]]:
    """``chunk id -> (document id, index, text)`` for the tenant's chunks among ids."""
    if not chunk_ids:
        return {}
    result = await session.execute(
        select(
            ContentChunk.id, ContentChunk.document_id, ContentChunk.chunk_index, ContentChunk.text
        ).where(ContentChunk.tenant_id == tenant_id, ContentChunk.id.in_(list(chunk_ids)))
    )
    return {row[0]: (row[1], row[2], row[3]) for row in result}


def query_terms(query: str) -> list[str]:
    """The words of a query, as the keyword index sees them (syntax characters gone)."""
    return _TERM.findall(query.lower())[:MAX_QUERY_TERMS]


async def keyword(
    session: AsyncSession, *, tenant_id: str, query: str, limit: int
) -> list[tuple[int, float]]:
    """``(chunk id, score)`` best first: BM25 on SQLite (FTS5), ``ts_rank_cd`` on
    PostgreSQL; any word may match, more and rarer matches rank higher."""
    terms = query_terms(query)
    if not terms:
        return []
    if session.get_bind().dialect.name == "postgresql":
        statement = text(
            "SELECT c.id, ts_rank_cd(c.fts_vector, q) AS score "
            "FROM content_chunks c, websearch_to_tsquery('english', :query) q "
            "WHERE c.tenant_id = :tenant AND c.fts_vector @@ q "
            "ORDER BY score DESC, c.id LIMIT :limit"
        )
        params = {"query": " or ".join(terms), "tenant": tenant_id, "limit": limit}
    else:
        # Each word quoted: FTS5 syntax in a query is matched literally, never run.
        match = " OR ".join(f'"{term}"' for term in terms)
        statement = text(
            f"SELECT c.id, -bm25({FTS_TABLE}) AS score FROM {FTS_TABLE} "  # noqa: S608
            f"JOIN content_chunks c ON c.id = {FTS_TABLE}.rowid "
            f"WHERE {FTS_TABLE} MATCH :match AND c.tenant_id = :tenant "
            "ORDER BY score DESC, c.id LIMIT :limit"
        )
        params = {"match": match, "tenant": tenant_id, "limit": limit}
    result = await session.execute(statement, params)
    return [(int(row[0]), float(row[1])) for row in result]
