"""Nodes and edges: CRUD as API.md says, lists, ETags, cascades, permissions, tenancy."""

from __future__ import annotations

from tests.conftest import user_headers
from tests.services.knowledge.helpers import BASE, edge, node


async def test_node_crud_and_list(client, admin_headers) -> None:
    created = await node(
        client, admin_headers, "Graph theory", type="topic", text="Vertices and edges.",
        properties={"level": 2, "tags": ["maths"]},
    )  # fmt: skip
    assert created["type"] == "topic"
    assert created["properties"] == {"level": 2, "tags": ["maths"]}
    assert created["text"] == "Vertices and edges."
    url = f"{BASE}/nodes/{created['id']}"
    got = await client.get(url, headers=admin_headers)
    assert got.status_code == 200
    assert got.json() == created
    etag = got.headers["etag"]
    assert (
        await client.get(url, headers={**admin_headers, "If-None-Match": etag})
    ).status_code == 304

    patched = await client.patch(
        url, json={"name": "Graphs", "properties": {"level": 3}}, headers=admin_headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Graphs"
    assert patched.json()["properties"] == {"level": 3}
    assert patched.json()["text"] == "Vertices and edges."
    stale = await client.patch(url, json={"name": "x"}, headers={**admin_headers, "If-Match": etag})
    assert stale.status_code == 412
    unknown_field = await client.patch(url, json={"colour": "red"}, headers=admin_headers)
    assert unknown_field.status_code == 422

    await node(client, admin_headers, "Algebra", type="topic")
    await node(client, admin_headers, "Euler", type="person")
    listed = await client.get(
        f"{BASE}/nodes?type=topic&sort=name:asc&fields=name", headers=admin_headers
    )
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [n["name"] for n in body["data"]] == ["Algebra", "Graphs"]
    assert set(body["data"][0]) == {"id", "name"}
    assert body["meta"] == {"page": 1, "limit": 20, "total": 2}
    by_name = await client.get(f"{BASE}/nodes?name=Euler", headers=admin_headers)
    assert [n["type"] for n in by_name.json()["data"]] == ["person"]
    assert (await client.get(f"{BASE}/nodes?colour=red", headers=admin_headers)).status_code == 400
    assert (await client.get(f"{BASE}/nodes?sort=colour", headers=admin_headers)).status_code == 400

    deleted = await client.delete(url, headers=admin_headers)
    assert deleted.status_code == 204
    missing = await client.get(url, headers=admin_headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_edges_and_deleting_a_node_deletes_its_edges(client, admin_headers) -> None:
    a = await node(client, admin_headers, "A")
    b = await node(client, admin_headers, "B")
    c = await node(client, admin_headers, "C")
    ab = await edge(client, admin_headers, a["id"], b["id"], "requires", weight=2.5,
                    properties={"why": "basis"})  # fmt: skip
    assert (ab["source"], ab["target"], ab["type"], ab["weight"]) == (
        a["id"],
        b["id"],
        "requires",
        2.5,
    )
    assert ab["properties"] == {"why": "basis"}
    bc = await edge(client, admin_headers, b["id"], c["id"])
    assert bc["weight"] == 1.0
    ca = await edge(client, admin_headers, c["id"], a["id"])

    got = await client.get(f"{BASE}/edges/{ab['id']}", headers=admin_headers)
    assert got.json() == ab
    from_b = await client.get(f"{BASE}/edges?source={b['id']}", headers=admin_headers)
    assert [e["id"] for e in from_b.json()["data"]] == [bc["id"]]
    typed = await client.get(f"{BASE}/edges?type=requires", headers=admin_headers)
    assert [e["id"] for e in typed.json()["data"]] == [ab["id"]]
    to_a = await client.get(f"{BASE}/edges?target={a['id']}", headers=admin_headers)
    assert [e["id"] for e in to_a.json()["data"]] == [ca["id"]]

    bad = await client.post(
        f"{BASE}/edges",
        json={"source": a["id"], "target": "no-such-node", "type": "x"},
        headers=admin_headers,
    )
    assert bad.status_code == 422
    assert "no-such-node" in bad.json()["detail"]
    negative = await client.post(
        f"{BASE}/edges",
        json={"source": a["id"], "target": b["id"], "type": "x", "weight": -1},
        headers=admin_headers,
    )
    assert negative.status_code == 422

    assert (
        await client.delete(f"{BASE}/nodes/{b['id']}", headers=admin_headers)
    ).status_code == 204
    left = await client.get(f"{BASE}/edges", headers=admin_headers)
    assert [e["id"] for e in left.json()["data"]] == [ca["id"]]
    assert (
        await client.delete(f"{BASE}/edges/{ca['id']}", headers=admin_headers)
    ).status_code == 204
    assert (await client.get(f"{BASE}/edges", headers=admin_headers)).json()["meta"]["total"] == 0


async def test_idempotency_key_creates_once(client, admin_headers) -> None:
    headers = {**admin_headers, "Idempotency-Key": "node-1"}
    first = await client.post(f"{BASE}/nodes", json={"type": "t", "name": "n"}, headers=headers)
    again = await client.post(f"{BASE}/nodes", json={"type": "t", "name": "n"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert (await client.get(f"{BASE}/nodes", headers=admin_headers)).json()["meta"]["total"] == 1


async def test_viewer_reads_but_cannot_write(client, admin_headers) -> None:
    a = await node(client, admin_headers, "A")
    viewer = await user_headers(client, admin_headers, email="v@example.com", roles=["viewer"])
    assert (await client.get(f"{BASE}/nodes/{a['id']}", headers=viewer)).status_code == 200
    search = await client.post(f"{BASE}/search", json={"query": "a"}, headers=viewer)
    assert search.status_code == 200
    denied = await client.post(f"{BASE}/nodes", json={"type": "t", "name": "n"}, headers=viewer)
    assert denied.status_code == 403
    assert (await client.delete(f"{BASE}/nodes/{a['id']}", headers=viewer)).status_code == 403
    assert (await client.get(f"{BASE}/nodes")).status_code == 401


async def test_another_tenant_cannot_see_or_touch(client, admin_headers) -> None:
    a = await node(client, admin_headers, "Secret alpha", text="classified")
    b = await node(client, admin_headers, "Secret beta")
    ab = await edge(client, admin_headers, a["id"], b["id"])
    tenant = await client.post("/api/v1/auth/tenants", json={"name": "acme"}, headers=admin_headers)
    assert tenant.status_code == 201, tenant.text
    other = await user_headers(
        client, admin_headers, email="boss@acme.test", roles=["admin"],
        tenant_id=tenant.json()["id"],
    )  # fmt: skip
    mine = await node(client, other, "Mine")
    for url in (
        f"{BASE}/nodes/{a['id']}",
        f"{BASE}/edges/{ab['id']}",
        f"{BASE}/nodes/{a['id']}/neighbors",
        f"{BASE}/nodes/{a['id']}/similar",
        f"{BASE}/path?from={a['id']}&to={b['id']}",
        f"{BASE}/learning-path?goal={a['id']}",
    ):
        assert (await client.get(url, headers=other)).status_code == 404, url
    assert (
        await client.patch(f"{BASE}/nodes/{a['id']}", json={"name": "x"}, headers=other)
    ).status_code == 404
    assert (await client.delete(f"{BASE}/nodes/{a['id']}", headers=other)).status_code == 404
    assert (await client.delete(f"{BASE}/edges/{ab['id']}", headers=other)).status_code == 404
    crossing = await client.post(
        f"{BASE}/edges", json={"source": mine["id"], "target": a["id"], "type": "x"}, headers=other
    )
    assert crossing.status_code == 422
    smuggled = await client.post(
        f"{BASE}/import",
        json={"nodes": [], "edges": [{"source": a["id"], "target": b["id"], "type": "x"}]},
        headers=other,
    )
    assert smuggled.status_code == 422
    assert (await client.get(f"{BASE}/nodes", headers=other)).json()["meta"]["total"] == 1
    assert (await client.get(f"{BASE}/edges", headers=other)).json()["meta"]["total"] == 0
    found = await client.post(f"{BASE}/search", json={"query": "secret"}, headers=other)
    assert found.json()["data"] == []
    exported = await client.get(f"{BASE}/export", headers=other)
    assert [n["name"] for n in exported.json()["nodes"]] == ["Mine"]
    ranks = await client.get(f"{BASE}/pagerank", headers=other)
    assert [r["node_id"] for r in ranks.json()["data"]] == [mine["id"]]
    # The first tenant's things are untouched.
    assert (await client.get(f"{BASE}/nodes/{a['id']}", headers=admin_headers)).status_code == 200
    assert (await client.get(f"{BASE}/edges/{ab['id']}", headers=admin_headers)).status_code == 200
