"""The semantic index: one vector per node (its name and text), searched by cosine.

Vectors are computed when a node is written, before anything is written (so a slow
model never holds a write transaction open), and stored as ``float32`` blobs in
``kg_embeddings`` under the embedder's name. A node whose vector could not be computed
then (the provider was down, the node predates the index, the model changed) gets one
when the tenant's matrix is next loaded, so the index heals itself.

The tenant's vectors are held in memory as one matrix, per process, keyed like the
graph cache by the tenant's revision, which every change of a node's name or text
bumps; a search reads the revision (one indexed row) and reloads only when it moved.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.embeddings import Embedder, EmbeddingUnavailable, Matrix
from orchestrion.kernel.search import from_blobs, to_blob, top_k
from orchestrion.services.knowledge import repository

logger = logging.getLogger("orchestrion.knowledge.semantic")
#: Characters of a node's text embedded: the local model reads 256 word pieces anyway,
#: and a remote provider bills per token.
MAX_CHARS = 4000


def node_text(name: str, text: str) -> str:
    """What is embedded for a node: its name, then its text."""
    return f"{name}\n{text}"[:MAX_CHARS] if text else name[:MAX_CHARS]


async def vectors_for(embedder: Embedder | None, texts: Sequence[str]) -> Matrix | None:
    """Vectors for ``texts``, or ``None`` when there is no embedder or it failed (the
    write goes on; the vectors are computed again when the tenant's matrix is loaded)."""
    if embedder is None or not texts:
        return None
    try:
        return await embedder.embed(texts)
    except EmbeddingUnavailable as exc:
        logger.warning("nodes stored without vectors for now: %s", exc.detail)
        return None


async def store(
    session: AsyncSession,
    *,
    embedder: Embedder | None,
    tenant_id: str,
    node_ids: Sequence[str],
    vectors: Matrix | None,
) -> None:
    """Save the vectors of ``node_ids`` under the embedder's name (replacing any);
    nothing without an embedder or vectors."""
    if embedder is None or vectors is None:
        return
    rows = [
        {"node_id": node_id, "model": embedder.name, "tenant_id": tenant_id,
         "vector": to_blob(vector)}
        for node_id, vector in zip(node_ids, vectors, strict=True)
    ]  # fmt: skip
    await repository.upsert_embeddings(session, rows)


@dataclass(frozen=True)
class TenantVectors:
    """A tenant's node ids and their unit vectors (row ``i`` is ``ids[i]``)."""

    revision: int
    model: str
    ids: list[str]
    matrix: Matrix

    def nearest(self, query: Matrix, k: int) -> list[tuple[str, float]]:
        """The ``k`` nodes nearest ``query`` as ``(node id, cosine)``, best first."""
        return [(self.ids[row], score) for row, score in top_k(self.matrix, query, k)]


class VectorCache:
    """The last few tenants' vector matrices, each with the revision it was loaded at."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, TenantVectors] = OrderedDict()
        self._loading: dict[str, asyncio.Lock] = {}
        self.loads = 0

    async def vectors(
        self, session: AsyncSession, *, tenant_id: str, embedder: Embedder
    ) -> TenantVectors:
        """The tenant's current vectors, computing any that are missing."""
        # Revision first: a change landing before the rows are read makes the matrix
        # newer than its revision, never older, and the next search reloads it.
        revision = await repository.revision(session, tenant_id=tenant_id)
        async with self._loading.setdefault(tenant_id, asyncio.Lock()):
            cached = self._entries.get(tenant_id)
            if cached is not None and cached.revision >= revision and cached.model == embedder.name:
                self._entries.move_to_end(tenant_id)
                return cached
            await backfill(session, tenant_id=tenant_id, embedder=embedder)
            ids, blobs = await repository.embeddings(
                session, tenant_id=tenant_id, model=embedder.name
            )
            loaded = TenantVectors(revision, embedder.name, *_matrix(ids, blobs, embedder))
            self.loads += 1
            self._entries[tenant_id] = loaded
            self._entries.move_to_end(tenant_id)
            while len(self._entries) > self.capacity:
                evicted, _ = self._entries.popitem(last=False)
                self._loading.pop(evicted, None)
            return loaded


def _matrix(ids: list[str], blobs: list[bytes], embedder: Embedder) -> tuple[list[str], Matrix]:
    dimensions = embedder.dimensions or (len(blobs[0]) // 4 if blobs else 0)
    # A vector of another size (a misbehaving provider) is left out, not fatal.
    keep = [i for i, blob in enumerate(blobs) if len(blob) == dimensions * 4]
    if len(keep) < len(blobs):
        logger.warning("%d stored vectors have the wrong size", len(blobs) - len(keep))
    matrix = from_blobs([blobs[i] for i in keep], dimensions)
    return [ids[i] for i in keep], matrix


async def backfill(session: AsyncSession, *, tenant_id: str, embedder: Embedder) -> int:
    """Compute and store the vectors the tenant's nodes lack; how many."""
    missing = await repository.unembedded(session, tenant_id=tenant_id, model=embedder.name)
    if not missing:
        return 0
    # Failures propagate here: a search cannot be answered without the vectors.
    vectors = await embedder.embed([node_text(name, text) for _, name, text in missing])
    await store(
        session,
        embedder=embedder,
        tenant_id=tenant_id,
        node_ids=[node_id for node_id, _, _ in missing],
        vectors=vectors,
    )
    logger.info("computed %d missing node vectors of tenant %s", len(missing), tenant_id)
    return len(missing)


async def query_vector(embedder: Embedder, query: str) -> Matrix:
    """The unit vector of a search query."""
    vectors = await embedder.embed([query])
    return np.asarray(vectors[0], dtype=np.float32)
