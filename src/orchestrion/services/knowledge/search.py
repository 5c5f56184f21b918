"""Rules of search.

- ``keyword``: BM25 over the term index; the score is BM25's.
- ``semantic``: the query's embedding against every node's (exact cosine over the
  tenant's cached matrix, :mod:`.semantic`); the score is the cosine.
- ``hybrid``: the keyword and semantic rankings (each cut at :data:`HYBRID_DEPTH`)
  fused by reciprocal rank; the score is the RRF sum (``k = 60``), so a node first in
  both rankings scores ``2/61``.

Without an embedding provider, ``semantic`` and ``hybrid`` answer 422.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.embeddings import Embedder
from orchestrion.kernel.search import reciprocal_rank_fusion
from orchestrion.services.knowledge import repository, semantic
from orchestrion.services.knowledge.errors import SearchUnavailable
from orchestrion.services.knowledge.schemas import SearchRequest
from orchestrion.services.knowledge.semantic import VectorCache
from orchestrion.services.knowledge.text import bm25, query_terms, ranked

#: How deep each ranking goes before fusion: deeper than the page, so a node ranked
#: modestly by both methods can still rise.
HYBRID_DEPTH = 50


async def search(
    session: AsyncSession,
    *,
    principal: Principal,
    request: SearchRequest,
    embedder: Embedder | None = None,
    vectors: VectorCache | None = None,
) -> list[dict[str, Any]]:
    """Nodes matching the query, best first."""
    tenant_id = principal.tenant_id
    if request.mode == "keyword":
        hits = await keyword(session, tenant_id=tenant_id, query=request.query, k=request.limit)
        return await _with_names(session, tenant_id, hits)
    if embedder is None:
        raise SearchUnavailable(
            f"search mode '{request.mode}' is not available: no embedding provider is "
            "configured (ORCHESTRION_EMBEDDINGS__PROVIDER is 'none'); use mode 'keyword'",
            errors=[{"loc": ["body", "mode"], "msg": "not available on this installation"}],
        )
    depth = request.limit if request.mode == "semantic" else max(request.limit, HYBRID_DEPTH)
    meaning = await _semantic(
        session, tenant_id=tenant_id, query=request.query, k=depth,
        embedder=embedder, vectors=vectors or VectorCache(capacity=1),
    )  # fmt: skip
    if request.mode == "semantic":
        return await _with_names(session, tenant_id, meaning)
    words = await keyword(session, tenant_id=tenant_id, query=request.query, k=depth)
    fused = reciprocal_rank_fusion([[n for n, _ in words], [n for n, _ in meaning]])
    return await _with_names(session, tenant_id, fused[: request.limit])


async def keyword(
    session: AsyncSession, *, tenant_id: str, query: str, k: int
) -> list[tuple[str, float]]:
    """The ``k`` best nodes by BM25 as ``(id, score)``, ties by name then id."""
    postings = await repository.postings(session, tenant_id=tenant_id, terms=query_terms(query))
    if not postings:
        return []
    documents, average = await repository.corpus(session, tenant_id=tenant_id)
    scores = bm25(postings, documents=documents, average_length=average)
    # Names only for the nodes that can make the cut (they break ties of equal scores).
    cut = sorted(scores.values(), reverse=True)[:k][-1]
    candidates = [n for n, score in scores.items() if score >= cut]
    names = await repository.names(session, tenant_id=tenant_id, ids=candidates)
    return [(n, scores[n]) for n in ranked({n: scores[n] for n in candidates}, names, k)]


async def _semantic(
    session: AsyncSession,
    *,
    tenant_id: str,
    query: str,
    k: int,
    embedder: Embedder,
    vectors: VectorCache,
) -> list[tuple[str, float]]:
    index = await vectors.vectors(session, tenant_id=tenant_id, embedder=embedder)
    if not index.ids:
        return []
    return index.nearest(await semantic.query_vector(embedder, query), k)


async def _with_names(
    session: AsyncSession, tenant_id: str, hits: list[tuple[str, float]]
) -> list[dict[str, Any]]:
    names = await repository.names(session, tenant_id=tenant_id, ids=[n for n, _ in hits])
    # A node deleted since its matrix was loaded is left out.
    return [{"node_id": n, "name": names[n], "score": score} for n, score in hits if n in names]
