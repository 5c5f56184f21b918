"""Rules of the content service: ingest, process, read, delete, and the events.

A document up to ``content.inline_max_bytes`` is processed during its request: it is
stored ``processed``, or the request fails (422) and nothing is stored. A larger one is
stored ``processing`` with a task on the queue in the same transaction; a worker
(:mod:`.worker`) processes it later into ``processed`` or ``failed`` (with ``error``).

Processing (:func:`prepare`) extracts the text, analyses it, cuts it into chunks and
embeds them (when an embedder is configured), off the event loop and outside any
transaction; :func:`store` (or :func:`fail`) then records the outcome and stages a
``content.processed`` (or ``content.failed``) CloudEvent in the same transaction.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.bus.events import CloudEvent
from orchestrion.kernel.bus.outbox import stage
from orchestrion.kernel.embeddings import Embedder, EmbeddingUnavailable
from orchestrion.kernel.ids import isoformat, new_id, utcnow
from orchestrion.kernel.queue import TaskQueue
from orchestrion.kernel.search import to_blob
from orchestrion.services.content import formats, repository
from orchestrion.services.content.analysis import analyze
from orchestrion.services.content.chunking import Chunk, chunk_text
from orchestrion.services.content.errors import ContentNotFound, UnreadableDocument
from orchestrion.services.content.extract import Limits, extract
from orchestrion.services.content.models import (
    TITLE_LENGTH,
    ContentChunk,
    ContentDocument,
    ContentTag,
)

logger = logging.getLogger("orchestrion.content")
SOURCE = "orchestrion/content"
PROCESSED = "content.processed"
FAILED = "content.failed"
#: The task queue of documents processed off the request path.
QUEUE = "content"
UNTITLED = "Untitled"


@dataclass
class ContentRuntime:
    """What processing needs, built once per app: limits, the queue, the embedder."""

    limits: Limits
    max_bytes: int
    inline_max_bytes: int
    chunk_size: int
    chunk_overlap: int
    queue: TaskQueue
    embedder: Embedder | None
    #: Parsing and analysis threads at once (CPU work; more only queue up).
    parsers: anyio.CapacityLimiter


@dataclass(frozen=True)
class Processed:
    """The outcome of processing: text, analysis, chunks (with vectors) and a title."""

    text: str
    analysis: dict[str, Any]
    chunks: list[Chunk]
    title: str | None
    vectors: list[bytes] | None = None


def to_dict(document: ContentDocument) -> dict[str, Any]:
    """The public JSON of a document."""
    return {
        "id": document.id,
        "tenant_id": document.tenant_id,
        "title": document.title,
        "content_type": document.content_type,
        "size": document.size,
        "sha256": document.sha256,
        "status": document.status,
        "error": document.error,
        "tags": document.tags,
        "analysis": document.analysis,
        "created_at": isoformat(document.created_at),
        "updated_at": isoformat(document.updated_at),
    }


def _work(data: bytes, content_type: str, runtime: ContentRuntime) -> Processed:
    extracted = extract(data, content_type, runtime.limits)
    try:
        analysis = analyze(extracted.text)
    except Exception:
        logger.exception("analysis failed")
        raise UnreadableDocument("the document's text could not be analysed") from None
    chunks = chunk_text(extracted.text, size=runtime.chunk_size, overlap=runtime.chunk_overlap)
    first_line = next((line.strip() for line in extracted.text.splitlines() if line.strip()), "")
    title = extracted.title or first_line[:80] or None
    return Processed(extracted.text, analysis, chunks, title)


async def sniff(data: bytes, runtime: ContentRuntime) -> str:
    """The type of ``data`` from its bytes (415 when unsupported), off the event loop."""
    return await anyio.to_thread.run_sync(formats.sniff, data, limiter=runtime.parsers)


async def prepare(runtime: ContentRuntime, data: bytes, content_type: str) -> Processed:
    """Extract, analyse, chunk and embed, outside any transaction (SQLite serialises
    sessions: CPU work inside one would hold every other writer up); 422 when the
    document cannot be read."""
    result = await anyio.to_thread.run_sync(
        _work, data, content_type, runtime, limiter=runtime.parsers
    )
    vectors = await _embed(runtime.embedder, [chunk.text for chunk in result.chunks])
    return Processed(result.text, result.analysis, result.chunks, result.title, vectors)


async def ingest(
    session: AsyncSession,
    *,
    runtime: ContentRuntime,
    principal: Principal,
    data: bytes,
    content_type: str,
    title: str | None,
    tags: list[str],
    processed: Processed | None,
) -> ContentDocument:
    """Store a document, processed already (small ones) or queued for a worker."""
    now = utcnow()
    document = ContentDocument(
        id=new_id(),
        tenant_id=principal.tenant_id,
        created_by=principal.subject,
        title=(title or UNTITLED)[:TITLE_LENGTH],
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        status="processing",
        error=None,
        tags=tags,
        data=data,
        created_at=now,
        updated_at=now,
    )
    session.add(document)
    await session.flush()
    await repository.insert_rows(
        session,
        ContentTag,
        [{"document_id": document.id, "tag": t, "tenant_id": document.tenant_id} for t in tags],
    )
    if processed is not None:
        await store(session, document=document, processed=processed)
    else:
        await runtime.queue.enqueue(
            session, queue=QUEUE, payload={"document_id": document.id}, key=f"content:{document.id}"
        )
    return document


async def store(session: AsyncSession, *, document: ContentDocument, processed: Processed) -> None:
    """Record a document as processed, with its chunks, and stage ``content.processed``."""
    document.text = processed.text
    document.analysis = processed.analysis
    document.status = "processed"
    document.error = None
    if document.title == UNTITLED and processed.title:
        document.title = processed.title[:TITLE_LENGTH]
    document.updated_at = utcnow()
    vectors = processed.vectors
    await repository.insert_rows(
        session,
        ContentChunk,
        [
            {
                "document_id": document.id,
                "tenant_id": document.tenant_id,
                "chunk_index": chunk.index,
                "text": chunk.text,
                "start_offset": chunk.start,
                "end_offset": chunk.end,
                "embedding": vectors[chunk.index] if vectors else None,
            }
            for chunk in processed.chunks
        ],
    )
    await repository.bump_revision(session, tenant_id=document.tenant_id)
    await session.flush()
    _announce(session, document, PROCESSED)


async def _embed(embedder: Embedder | None, texts: list[str]) -> list[bytes] | None:
    """Each text's vector as bytes; None without an embedder or when it is down (the
    document is still processed: keyword search finds it, semantic search does not)."""
    if embedder is None or not texts:
        return None
    try:
        matrix = await embedder.embed(texts)
    except EmbeddingUnavailable as exc:
        logger.warning("chunks stored without vectors: %s", exc.detail)
        return None
    return [to_blob(row) for row in matrix]


def fail(session: AsyncSession, *, document: ContentDocument, reason: str) -> None:
    """Mark a document ``failed`` with ``reason`` and stage ``content.failed``."""
    document.status = "failed"
    document.error = reason
    document.updated_at = utcnow()
    _announce(session, document, FAILED)


def _announce(session: AsyncSession, document: ContentDocument, kind: str) -> None:
    analysis = document.analysis or {}
    data: dict[str, Any] = {
        "tenant_id": document.tenant_id,
        "content_id": document.id,
        "title": document.title,
        "content_type": document.content_type,
        "tags": document.tags,
    }
    if kind == PROCESSED:
        data.update(
            language=analysis.get("language"),
            summary=analysis.get("summary"),
            keywords=[k["term"] for k in analysis.get("keywords", [])],
            entities=analysis.get("entities", []),
            concepts=analysis.get("concepts", []),
        )
    else:
        data["error"] = document.error
    stage(
        session,
        topic=kind,
        event_=CloudEvent(source=SOURCE, type=kind, subject=document.id, data=data),
    )


async def get(session: AsyncSession, *, principal: Principal, content_id: str) -> ContentDocument:
    """A document of the caller's tenant; 404 otherwise."""
    document = await repository.get_document(
        session, tenant_id=principal.tenant_id, document_id=content_id
    )
    if document is None:
        raise ContentNotFound(f"content '{content_id}' not found")
    return document


async def delete(
    session: AsyncSession, *, runtime: ContentRuntime, document: ContentDocument
) -> None:
    """Delete a document with its chunks, tags and any task still waiting for it."""
    await runtime.queue.delete_key(session, f"content:{document.id}")
    await repository.delete_document(session, document_id=document.id)
    await repository.bump_revision(session, tenant_id=document.tenant_id)


async def analyze_text(runtime: ContentRuntime, text: str) -> dict[str, Any]:
    """The analysis of ``text``, off the event loop."""
    return await anyio.to_thread.run_sync(analyze, text, limiter=runtime.parsers)
