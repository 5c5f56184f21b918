"""Search over chunks: keyword (the database's full-text index), semantic (cosine over
the tenant's chunk vectors) and hybrid (reciprocal rank fusion of the two).

A tenant's vectors are loaded once into a matrix and reused until its chunk revision
changes (any document processed or deleted), so a query over ten thousand chunks does
not read them all again. The cache holds :data:`CACHED_TENANTS` tenants, least
recently used out first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.embeddings import Embedder
from orchestrion.kernel.search import from_blobs, reciprocal_rank_fusion, top_k
from orchestrion.services.content import repository
from orchestrion.services.content.errors import SearchUnavailable
from orchestrion.services.content.schemas import ContentSearch
from orchestrion.services.content.service import ContentRuntime

CACHED_TENANTS = 16
#: Candidates each ranking contributes to a hybrid search, per result asked for.
HYBRID_DEPTH = 3


@dataclass(frozen=True)
class TenantVectors:
    """A tenant's chunk ids and their vectors, as of ``revision``."""

    revision: int
    model: str
    ids: list[int]
    matrix: npt.NDArray[np.float32]


class VectorCache:
    """Tenants' vector matrices, reloaded when their revision moves."""

    def __init__(self, capacity: int = CACHED_TENANTS) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, TenantVectors] = OrderedDict()
        self.loads = 0

    async def get(
        self, session: AsyncSession, *, tenant_id: str, embedder: Embedder
    ) -> TenantVectors:
        """The tenant's vectors, from the cache when nothing changed since they were read."""
        current = await repository.revision(session, tenant_id=tenant_id)
        found = self._entries.get(tenant_id)
        if found is not None and found.revision == current and found.model == embedder.name:
            self._entries.move_to_end(tenant_id)
            return found
        rows = await repository.vectors(session, tenant_id=tenant_id, size=embedder.dimensions * 4)
        matrix = from_blobs([blob for _, blob in rows], embedder.dimensions)
        entry = TenantVectors(current, embedder.name, [chunk for chunk, _ in rows], matrix)
        self.loads += 1
        self._entries[tenant_id] = entry
        self._entries.move_to_end(tenant_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return entry


async def _semantic(
    session: AsyncSession,
    *,
    runtime: ContentRuntime,
    cache: VectorCache,
    tenant_id: str,
    query: str,
    limit: int,
) -> list[tuple[int, float]]:
    embedder = runtime.embedder
    if embedder is None:
        raise SearchUnavailable(
            "semantic search is not available: no embedding provider is configured "
            "(embeddings.provider is 'none'); use mode 'keyword'",
            errors=[{"loc": ["body", "mode"], "msg": "not available on this installation"}],
        )
    vector = (await embedder.embed([query]))[0]
    loaded = await cache.get(session, tenant_id=tenant_id, embedder=embedder)
    return [(loaded.ids[row], score) for row, score in top_k(loaded.matrix, vector, limit)]


async def search(
    session: AsyncSession,
    *,
    runtime: ContentRuntime,
    cache: VectorCache,
    principal: Principal,
    request: ContentSearch,
) -> list[dict[str, Any]]:
    """Chunks of the caller's documents matching the query, best first."""
    tenant_id = principal.tenant_id
    if request.mode == "keyword":
        ranked = await repository.keyword(
            session, tenant_id=tenant_id, query=request.query, limit=request.limit
        )
    elif request.mode == "semantic":
        ranked = await _semantic(
            session, runtime=runtime, cache=cache, tenant_id=tenant_id,
            query=request.query, limit=request.limit,
        )  # fmt: skip
    else:
        depth = request.limit * HYBRID_DEPTH
        semantic = await _semantic(
            session, runtime=runtime, cache=cache, tenant_id=tenant_id,
            query=request.query, limit=depth,
        )  # fmt: skip
        keyword = await repository.keyword(
            session, tenant_id=tenant_id, query=request.query, limit=depth
        )
        fused = reciprocal_rank_fusion([[c for c, _ in keyword], [c for c, _ in semantic]])
        ranked = fused[: request.limit]
    found = await repository.hits(session, tenant_id=tenant_id, chunk_ids=[c for c, _ in ranked])
    return [
        {
            "content_id": found[chunk][0],
            "chunk_index": found[chunk][1],
            "text": found[chunk][2],
            "score": round(float(score), 6),
        }
        for chunk, score in ranked
        if chunk in found
    ]
