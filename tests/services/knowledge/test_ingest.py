"""Processed content becomes documents, entities and concepts in the graph, through
the in-memory bus and a real database; delivering an event again changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from orchestrion.kernel.bus import Bus, CloudEvent, open_bus
from orchestrion.services.knowledge import ingest
from orchestrion.services.knowledge.app import create_app
from orchestrion.services.knowledge.models import KgEdge, KgEmbedding, KgNode
from orchestrion.settings import Settings
from tests.fixtures.lifespan import in_process

TENANT = "00000000-0000-7000-8000-0000000000aa"
OTHER = "00000000-0000-7000-8000-0000000000bb"


@dataclasses.dataclass
class Knowledge:
    app: Any
    bus: Bus

    async def publish(self, event: CloudEvent) -> None:
        await self.bus.publish(ingest.TOPIC, event)

    async def graph(self, tenant_id: str = TENANT) -> tuple[list[KgNode], list[KgEdge]]:
        async with self.app.state.database.session() as session:
            nodes = await session.execute(select(KgNode).where(KgNode.tenant_id == tenant_id))
            edges = await session.execute(select(KgEdge).where(KgEdge.tenant_id == tenant_id))
            return list(nodes.scalars()), list(edges.scalars())

    async def wait_for(self, content_id: str, tenant_id: str = TENANT) -> None:
        """Until the document of ``content_id`` exists (the test's timeout bounds it)."""
        while True:
            nodes, _ = await self.graph(tenant_id)
            if any(n.properties.get("content_id") == content_id for n in nodes):
                return
            await asyncio.sleep(0.05)


@pytest.fixture
async def knowledge(settings: Settings) -> AsyncIterator[Knowledge]:
    app = create_app(settings)
    bus = open_bus("memory://")
    app.state.bus = bus
    async with bus, in_process(app):
        yield Knowledge(app, bus)


def processed(content_id: str, tenant_id: str = TENANT, **data: Any) -> CloudEvent:
    body = {
        "tenant_id": tenant_id,
        "content_id": content_id,
        "title": "The reign of Augustus",
        "content_type": "text/markdown",
        "tags": ["rome"],
        "language": "en",
        "summary": "Augustus ruled Rome after the civil wars.",
        "keywords": [{"term": "augustus", "score": 0.9}],
        "entities": [
            {"text": "Augustus", "label": "PERSON"},
            {"text": "Rome", "label": "PLACE"},
            {"text": "Augustus", "label": "PERSON"},
        ],
        "concepts": ["Roman Empire", "civil war"],
    } | data
    return CloudEvent(source=ingest.SOURCE, type=ingest.TOPIC, subject=content_id, data=body)


def _shape(nodes: list[KgNode], edges: list[KgEdge]) -> tuple[list[Any], list[Any]]:
    names = {n.id: (n.type, n.name) for n in nodes}
    return (
        sorted(names.values()),
        sorted((names[e.source], e.type, names[e.target]) for e in edges),
    )


async def test_a_processed_document_becomes_nodes_and_edges(knowledge: Knowledge) -> None:
    await knowledge.publish(processed("c1"))
    await knowledge.wait_for("c1")
    nodes, edges = await knowledge.graph()
    document = next(n for n in nodes if n.type == "document")
    assert document.name == "The reign of Augustus"
    assert document.text == "Augustus ruled Rome after the civil wars."
    assert document.properties == {
        "content_id": "c1", "content_type": "text/markdown", "tags": ["rome"],
    }  # fmt: skip
    doc = ("document", "The reign of Augustus")
    assert _shape(nodes, edges) == (
        sorted([doc, ("person", "Augustus"), ("place", "Rome"), ("concept", "Roman Empire"),
                ("concept", "civil war")]),
        sorted([(doc, "mentions", ("person", "Augustus")), (doc, "mentions", ("place", "Rome")),
                (doc, "covers", ("concept", "Roman Empire")),
                (doc, "covers", ("concept", "civil war"))]),
    )  # fmt: skip
    # Ingested nodes are embedded like any other.
    async with knowledge.app.state.database.session() as session:
        embedded = await session.execute(select(KgEmbedding.node_id))
        assert set(embedded.scalars()) == {n.id for n in nodes}


async def test_delivering_again_changes_nothing(knowledge: Knowledge) -> None:
    first = processed("c1")
    await knowledge.publish(first)
    await knowledge.wait_for("c1")
    before = await knowledge.graph()
    # The same event again (a redelivery), and the same content under a new event id
    # (a producer that sent it twice): the bus skips the first, the handler the second.
    await knowledge.publish(first)
    await knowledge.publish(dataclasses.replace(first, id="another-id"))
    # Handled in order, one at a time: once c2 is in, both repeats were handled.
    await knowledge.publish(processed("c2", title="Gaul", entities=[], concepts=["war"]))
    await knowledge.wait_for("c2")
    nodes, edges = await knowledge.graph()
    kept = {n.id for n in before[0]}
    assert [(n.id, n.name, n.text, n.properties, n.updated_at) for n in before[0]] == [
        (n.id, n.name, n.text, n.properties, n.updated_at) for n in nodes if n.id in kept
    ]
    assert {e.id for e in edges if e.source in kept} == {e.id for e in before[1]}
    assert len(nodes) == len(before[0]) + 2  # c2's document and its concept "war"


async def test_documents_share_entities_and_tenants_do_not(knowledge: Knowledge) -> None:
    await knowledge.publish(processed("c1"))
    second = processed(
        "c2",
        title="Augustus and Agrippa",
        entities=[{"text": "Augustus", "label": "PERSON"}, {"text": "Agrippa", "label": "PERSON"}],
        concepts=["Roman Empire"],
    )
    await knowledge.publish(second)
    await knowledge.publish(processed("c1", tenant_id=OTHER))
    await knowledge.wait_for("c2")
    await knowledge.wait_for("c1", tenant_id=OTHER)
    nodes, edges = await knowledge.graph()
    people = [n for n in nodes if n.type == "person"]
    assert sorted(n.name for n in people) == ["Agrippa", "Augustus"]
    augustus = next(n for n in people if n.name == "Augustus")
    mentioning = {e.source for e in edges if e.target == augustus.id and e.type == "mentions"}
    assert len(mentioning) == 2  # both documents, one node
    empire = [n for n in nodes if n.type == "concept" and n.name == "Roman Empire"]
    assert len(empire) == 1
    other_nodes, _ = await knowledge.graph(OTHER)
    assert len(other_nodes) == 5
    assert not {n.id for n in other_nodes} & {n.id for n in nodes}


async def test_processing_again_updates_the_document(knowledge: Knowledge) -> None:
    await knowledge.publish(processed("c1"))
    await knowledge.wait_for("c1")
    await knowledge.publish(processed("c1", title="Augustus, first emperor", tags=["rome", "x"],
                                      concepts=["Roman Empire", "principate"]))  # fmt: skip
    await knowledge.publish(processed("c9", title="marker", entities=[], concepts=[]))
    await knowledge.wait_for("c9")
    nodes, edges = await knowledge.graph()
    documents = [n for n in nodes if n.type == "document" and n.properties["content_id"] == "c1"]
    assert [(d.name, d.properties["tags"]) for d in documents] == [
        ("Augustus, first emperor", ["rome", "x"])
    ]
    names = {n.id: n.name for n in nodes}
    covered = {names[e.target] for e in edges if e.source == documents[0].id and e.type == "covers"}
    # Links are added, never removed: the graph keeps what earlier versions said.
    assert covered == {"Roman Empire", "civil war", "principate"}


async def test_a_malformed_event_is_a_dead_letter(knowledge: Knowledge) -> None:
    bad = CloudEvent(source=ingest.SOURCE, type=ingest.TOPIC, data={"title": "no ids"})
    await knowledge.publish(bad)
    while True:
        letters = await knowledge.bus.dlq_list(ingest.TOPIC, ingest.GROUP)
        if letters:
            break
        await asyncio.sleep(0.05)
    assert "content_id" in letters[0].error
    assert await knowledge.graph() == ([], [])
