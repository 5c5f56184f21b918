"""Documents the content service processed, taken into the graph.

The content service publishes ``content.processed`` (source ``orchestrion/content``)
once a document is analysed. The knowledge service consumes it in group ``knowledge``:

- a ``document`` node per content id (name: the title, text: the summary, properties:
  ``content_id``, ``content_type``, ``tags``), updated when the content is processed
  again with another title, summary or tags;
- a node per entity (type: the entity's label lower-cased, ``person``, ``place``,
  ``org``...) and per concept (type ``concept``), matched by (tenant, type, name), so
  two documents mentioning "Augustus" share one node;
- edges ``document --mentions--> entity`` and ``document --covers--> concept``.

Handling is idempotent on its own, not only through the bus's deduplication: nodes and
edges are looked up before anything is created, so a redelivered or republished event
changes nothing. New nodes and edges go in as one import (one batch of embeddings, one
transaction, one revision).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.bus import Bus, CloudEvent
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.embeddings import Embedder
from orchestrion.services.knowledge import repository, service
from orchestrion.services.knowledge.models import NAME_LENGTH, TYPE_LENGTH
from orchestrion.services.knowledge.schemas import (
    ImportEdge,
    ImportNode,
    ImportRequest,
    NodeUpdate,
)

TOPIC = "content.processed"
GROUP = "knowledge"
SOURCE = "orchestrion/content"
DOCUMENT = "document"
logger = logging.getLogger("orchestrion.knowledge.ingest")


class Keyword(BaseModel):
    """A keyword the analysis found, with its weight."""

    term: str
    score: float = 0.0


class Entity(BaseModel):
    """A named entity and its label (``PERSON``, ``PLACE``, ``ORG``...)."""

    text: str
    label: str


class ContentProcessed(BaseModel):
    """The data of a ``content.processed`` event (unknown fields are ignored, so the
    producer may add some)."""

    model_config = ConfigDict(extra="ignore")

    tenant_id: str = Field(min_length=1, max_length=36)
    content_id: str = Field(min_length=1, max_length=200)
    title: str = ""
    content_type: str = ""
    tags: list[str] = Field(default_factory=list)
    language: str | None = None
    summary: str = ""
    keywords: list[Keyword] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list)
    concepts: list[str] = Field(default_factory=list)

    @field_validator("keywords", mode="before")
    @classmethod
    def _terms(cls, value: object) -> object:
        """The content service announces keywords as their terms; a scored keyword
        (``{"term", "score"}``, the analysis's own shape) is taken as well."""
        if isinstance(value, list):
            return [{"term": k} if isinstance(k, str) else k for k in value]
        return value


def _name(value: str) -> str:
    return " ".join(value.split())[:NAME_LENGTH]


def _targets(data: ContentProcessed) -> dict[tuple[str, str], str]:
    """``(type, name) -> edge type`` for every entity and concept, in order, once each."""
    found: dict[tuple[str, str], str] = {}
    for entity in data.entities:
        kind, name = _name(entity.label).lower()[:TYPE_LENGTH], _name(entity.text)
        if kind and name:
            found.setdefault((kind, name), "mentions")
    for concept in data.concepts:
        if name := _name(concept):
            found.setdefault(("concept", name), "covers")
    return found


async def ingest(
    session: AsyncSession, *, data: ContentProcessed, embedder: Embedder | None
) -> dict[str, int]:
    """Bring one processed document into its tenant's graph; what was created."""
    principal = Principal(subject=SOURCE, tenant_id=data.tenant_id)
    title = _name(data.title) or data.content_id
    properties: dict[str, Any] = {
        "content_id": data.content_id,
        "content_type": data.content_type,
        "tags": list(data.tags),
    }
    document = await repository.document(
        session, tenant_id=data.tenant_id, content_id=data.content_id
    )
    nodes: list[ImportNode] = []
    linked: set[tuple[str, str]] = set()
    if document is None:
        doc_ref = "document"
        nodes.append(
            ImportNode(key=doc_ref, type=DOCUMENT, name=title, text=data.summary,
                       properties=properties)
        )  # fmt: skip
    else:
        doc_ref = document.id
        wanted = {"name": title, "text": data.summary, "properties": properties}
        current = {"name": document.name, "text": document.text, "properties": document.properties}
        if wanted != current:
            await service.update_node(
                session, node=document, changes=NodeUpdate(**wanted), embedder=embedder
            )
        linked = await repository.links_from(session, node_id=document.id)
    targets = _targets(data)
    existing = await repository.nodes_by_type_name(
        session, tenant_id=data.tenant_id, pairs=list(targets)
    )
    edges: list[ImportEdge] = []
    for i, ((kind, name), edge_type) in enumerate(targets.items()):
        target = existing.get((kind, name))
        if target is None:
            target = f"new-{i}"
            nodes.append(ImportNode(key=target, type=kind, name=name))
        if (target, edge_type) not in linked:
            edges.append(ImportEdge(source=doc_ref, target=target, type=edge_type))
    if not nodes and not edges:
        return {"nodes": 0, "edges": 0}
    batch = ImportRequest(nodes=nodes, edges=edges)
    result = await service.import_graph(
        session,
        principal=principal,
        data=batch,
        embedder=embedder,
        vectors=await service.import_vectors(data=batch, embedder=embedder),
    )
    return {"nodes": result["nodes"], "edges": result["edges"]}


Handler = Callable[[CloudEvent], Awaitable[None]]


def handler(bus: Bus, database: Database, embedder: Embedder | None) -> Handler:
    """The bus handler: one transaction per event. Data that does not fit is parked as
    a dead letter at once (retrying cannot fix it); any other failure raises, so the
    bus retries it with backoff."""

    async def handle(event: CloudEvent) -> None:
        if event.type != TOPIC:
            return
        try:
            data = ContentProcessed.model_validate(event.data)
        except ValidationError as exc:
            logger.warning("malformed %s event %s: %s", TOPIC, event.id, exc)
            await bus.dead_letter(topic=TOPIC, group=GROUP, attempts=0, error=exc, event=event)
            return
        async with database.session() as session:
            created = await ingest(session, data=data, embedder=embedder)
        logger.info(
            "content %s of tenant %s: %d nodes and %d edges created",
            data.content_id, data.tenant_id, created["nodes"], created["edges"],
        )  # fmt: skip

    return handle
