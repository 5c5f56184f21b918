"""Rules of search: keyword (BM25 over the term index); semantic and hybrid need an
embedding model, which this installation does not ship, so they answer 422."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.principal import Principal
from orchestrion.services.knowledge import repository
from orchestrion.services.knowledge.errors import SearchUnavailable
from orchestrion.services.knowledge.schemas import SearchRequest
from orchestrion.services.knowledge.text import bm25, query_terms, ranked


async def search(
    session: AsyncSession, *, principal: Principal, request: SearchRequest
) -> list[dict[str, Any]]:
    """Nodes matching the query, best first."""
    if request.mode != "keyword":
        raise SearchUnavailable(
            f"search mode '{request.mode}' is not available: no embedding model is "
            "installed; use mode 'keyword'",
            errors=[{"loc": ["body", "mode"], "msg": "not available on this installation"}],
        )
    tenant_id = principal.tenant_id
    postings = await repository.postings(
        session, tenant_id=tenant_id, terms=query_terms(request.query)
    )
    if not postings:
        return []
    documents, average = await repository.corpus(session, tenant_id=tenant_id)
    scores = bm25(postings, documents=documents, average_length=average)
    # Names only for the nodes that can make the cut (they break ties of equal scores).
    cut = sorted(scores.values(), reverse=True)[: request.limit][-1]
    candidates = [n for n, score in scores.items() if score >= cut]
    names = await repository.names(session, tenant_id=tenant_id, ids=candidates)
    scores = {n: scores[n] for n in candidates}
    best = ranked(scores, names, request.limit)
    return [{"node_id": n, "name": names.get(n, ""), "score": scores[n]} for n in best]
