"""Reading, listing, deleting, chunks, analysis, tenancy, events and keyword search."""

from __future__ import annotations

import json

from sqlalchemy import select

from orchestrion.kernel.bus.outbox import OutboxMessage
from orchestrion.kernel.db.engine import Database
from tests.conftest import user_headers
from tests.services.content.helpers import BASE, add_text, settled
from tests.services.content.test_analysis_unit import EMPERORS, PHOTOSYNTHESIS


async def test_get_list_filters_and_delete(client, admin_headers) -> None:
    a = await add_text(client, admin_headers, PHOTOSYNTHESIS, title="Plants", tags=["bio"])
    b = await add_text(client, admin_headers, EMPERORS, title="Rome", tags=["history", "bio"])
    c = await client.post(BASE, json={"markdown": "# Notes\n\n- one\n- two"}, headers=admin_headers)
    assert c.status_code == 201
    assert c.headers["location"] == f"{BASE}/{c.json()['id']}"
    one = await client.get(f"{BASE}/{a['id']}", headers=admin_headers)
    assert one.status_code == 200
    body = one.json()
    assert body["analysis"]["keywords"]
    assert body["analysis"]["difficulty"] in ("beginner", "intermediate", "advanced")
    cached = await client.get(
        f"{BASE}/{a['id']}", headers={**admin_headers, "If-None-Match": one.headers["etag"]}
    )
    assert cached.status_code == 304

    async def ids(query: str) -> set[str]:
        response = await client.get(f"{BASE}?{query}", headers=admin_headers)
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["data"]}

    assert await ids("tag=bio") == {a["id"], b["id"]}
    assert await ids("tag=history") == {b["id"]}
    assert await ids("content_type=text/markdown") == {c.json()["id"]}
    assert await ids("status=processed") == {a["id"], b["id"], c.json()["id"]}
    assert await ids("status=failed") == set()
    listed = await client.get(f"{BASE}?sort=title:asc&fields=id,title", headers=admin_headers)
    assert [i["title"] for i in listed.json()["data"]] == ["Notes", "Plants", "Rome"]
    assert set(listed.json()["data"][0]) == {"id", "title"}
    assert (await client.get(f"{BASE}?colour=red", headers=admin_headers)).status_code == 400

    stale = await client.delete(f"{BASE}/{a['id']}", headers={**admin_headers, "If-Match": '"x"'})
    assert stale.status_code == 412
    assert (await client.delete(f"{BASE}/{a['id']}", headers=admin_headers)).status_code == 204
    assert (await client.get(f"{BASE}/{a['id']}", headers=admin_headers)).status_code == 404
    assert (await client.get(f"{BASE}/{a['id']}/chunks", headers=admin_headers)).status_code == 404
    hits = await client.post(f"{BASE}/search", json={"query": "chlorophyll"}, headers=admin_headers)
    assert hits.json()["data"] == []


async def test_chunks_index_the_text(client, admin_headers) -> None:
    text = "\n\n".join([PHOTOSYNTHESIS, EMPERORS] * 4)
    created = await add_text(client, admin_headers, text)
    full = (await client.get(f"{BASE}/{created['id']}/text", headers=admin_headers)).text
    response = await client.get(f"{BASE}/{created['id']}/chunks?limit=100", headers=admin_headers)
    assert response.status_code == 200
    page = response.json()
    assert page["meta"]["total"] == len(page["data"]) > 5
    for i, chunk in enumerate(page["data"]):
        assert set(chunk) == {"index", "text", "start", "end"}
        assert chunk["index"] == i
        assert full[chunk["start"] : chunk["end"]] == chunk["text"]
        assert len(chunk["text"]) <= 300
    second = await client.get(
        f"{BASE}/{created['id']}/chunks?limit=2&page=2", headers=admin_headers
    )
    assert [c["index"] for c in second.json()["data"]] == [2, 3]


async def test_analyze_stores_nothing(client, admin_headers) -> None:
    response = await client.post(f"{BASE}/analyze", json={"text": EMPERORS}, headers=admin_headers)
    assert response.status_code == 200, response.text
    entities = {e["text"]: e["label"] for e in response.json()["entities"]}
    assert entities["Hadrian"] == "PERSON"
    assert (await client.get(BASE, headers=admin_headers)).json()["meta"]["total"] == 0
    bad = await client.post(f"{BASE}/analyze", json={}, headers=admin_headers)
    assert bad.status_code == 422


async def test_keyword_search(client, admin_headers) -> None:
    plants = await add_text(client, admin_headers, PHOTOSYNTHESIS)
    rome = await add_text(client, admin_headers, EMPERORS)

    async def search(query: str, **extra) -> list[dict]:
        response = await client.post(
            f"{BASE}/search", json={"query": query, **extra}, headers=admin_headers
        )
        assert response.status_code == 200, response.text
        hits: list[dict] = response.json()["data"]
        return hits

    hits = await search("chlorophyll sunlight")
    assert hits
    assert {h["content_id"] for h in hits} == {plants["id"]}
    assert set(hits[0]) == {"content_id", "chunk_index", "text", "score"}
    assert "chlorophyll" in hits[0]["text"]
    # Stemming: "emperor" finds "emperors"; syntax characters are only words.
    assert {h["content_id"] for h in await search("EMPEROR")} == {rome["id"]}
    assert await search('" * ( ^ : -') == []
    assert {h["content_id"] for h in await search('NEAR( "Danube* OR')} == {rome["id"]}
    assert await search("quantum") == []
    scores = [h["score"] for h in await search("energy emperor water", limit=5)]
    assert scores == sorted(scores, reverse=True)
    assert len(await search("the", limit=1)) <= 1
    for mode in ("semantic", "hybrid"):
        off = await client.post(
            f"{BASE}/search", json={"query": "x", "mode": mode}, headers=admin_headers
        )
        assert off.status_code == 422
        assert "not available" in off.json()["detail"]


async def test_another_tenant_sees_nothing(client, admin_headers) -> None:
    mine = await add_text(client, admin_headers, PHOTOSYNTHESIS)
    tenant = await client.post("/api/v1/auth/tenants", json={"name": "acme"}, headers=admin_headers)
    assert tenant.status_code == 201, tenant.text
    other = await user_headers(
        client, admin_headers, email="e@acme.test", roles=["editor"], tenant_id=tenant.json()["id"]
    )
    for path in ("", "/text", "/chunks"):
        response = await client.get(f"{BASE}/{mine['id']}{path}", headers=other)
        assert response.status_code == 404, path
    assert (await client.delete(f"{BASE}/{mine['id']}", headers=other)).status_code == 404
    assert (await client.get(BASE, headers=other)).json()["data"] == []
    hits = await client.post(f"{BASE}/search", json={"query": "chlorophyll"}, headers=other)
    assert hits.json()["data"] == []
    viewer = await user_headers(client, admin_headers, email="v@x.test", roles=["viewer"])
    assert (await client.post(BASE, json={"text": "x"}, headers=viewer)).status_code == 403
    read = await client.post(f"{BASE}/search", json={"query": "chlorophyll"}, headers=viewer)
    assert read.status_code == 200
    assert len(read.json()["data"]) >= 1
    assert (await client.get(BASE)).status_code == 401


async def test_events_are_staged_in_the_outbox(settings, client, admin_headers) -> None:
    done = await add_text(client, admin_headers, EMPERORS, title="Rome", tags=["history"])
    failed = await client.post(
        BASE, files={"file": ("x.pdf", b"%PDF-1.4\n" + b"junk " * 5000)}, headers=admin_headers
    )
    assert failed.status_code == 201
    assert (await settled(client, admin_headers, failed.json()["id"]))["status"] == "failed"
    events = await _staged(settings)
    processed = next(e for e in events if e["type"] == "content.processed")
    assert processed["source"] == "orchestrion/content"
    assert processed["subject"] == done["id"]
    data = processed["data"]
    assert data["content_id"] == done["id"]
    assert data["title"] == "Rome"
    assert data["tags"] == ["history"]
    assert data["language"] == "en"
    assert {"text": "Hadrian", "label": "PERSON"} in data["entities"]
    assert data["keywords"]
    assert data["summary"]
    assert isinstance(data["concepts"], list)
    fail = next(e for e in events if e["type"] == "content.failed")
    assert fail["subject"] == failed.json()["id"]
    assert fail["data"]["error"]


async def _staged(settings) -> list[dict]:
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            rows = await session.execute(
                select(OutboxMessage).where(OutboxMessage.topic.like("content.%"))
            )
            return [json.loads(row.body) for row in rows.scalars()]
    finally:
        await database.dispose()
