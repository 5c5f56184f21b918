"""The semantic index heals itself: nodes stored without a vector (the provider was off
or down) get one when the tenant's matrix is next loaded; the cache follows revisions."""

from __future__ import annotations

from sqlalchemy import func, select

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.embeddings.local import LocalEmbedder
from orchestrion.services.knowledge import search, service
from orchestrion.services.knowledge.models import KgEmbedding
from orchestrion.services.knowledge.schemas import NodeCreate, SearchRequest
from orchestrion.services.knowledge.semantic import VectorCache

PRINCIPAL = Principal(subject="tester", tenant_id="00000000-0000-7000-8000-0000000000cc")


async def _vectors(database: Database) -> int:
    async with database.session() as session:
        return int((await session.execute(select(func.count()).select_from(KgEmbedding))).one()[0])


async def test_missing_vectors_are_computed_at_the_next_search(database: Database) -> None:
    async with database.session() as session:
        for name in ("Car", "Banana", "Violin"):
            await service.create_node(
                session, principal=PRINCIPAL, data=NodeCreate(type="thing", name=name)
            )
    assert await _vectors(database) == 0  # no embedder when they were written
    embedder, cache = LocalEmbedder(), VectorCache()
    request = SearchRequest(query="automobile", mode="semantic", limit=3)
    async with database.session() as session:
        hits = await search.search(
            session, principal=PRINCIPAL, request=request, embedder=embedder, vectors=cache
        )
    assert hits[0]["name"] == "Car"
    assert await _vectors(database) == 3
    assert cache.loads == 1
    # Unchanged graph: the cached matrix serves; a new node moves the revision.
    async with database.session() as session:
        await search.search(
            session, principal=PRINCIPAL, request=request, embedder=embedder, vectors=cache
        )
    assert cache.loads == 1
    async with database.session() as session:
        await service.create_node(
            session, principal=PRINCIPAL, data=NodeCreate(type="thing", name="Truck"),
            embedder=embedder,
        )  # fmt: skip
        hits = await search.search(
            session, principal=PRINCIPAL, request=request, embedder=embedder, vectors=cache
        )
    assert cache.loads == 2
    assert {hit["name"] for hit in hits[:2]} == {"Car", "Truck"}
