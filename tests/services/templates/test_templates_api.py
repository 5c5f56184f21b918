"""Templates through the gateway: create, read, versions, search, filters, categories."""

from __future__ import annotations

import httpx

from tests.services.templates.conftest import Headers, body, create, listed


async def test_create_get_and_replace_make_versions(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    created = await create(client, admin)
    assert created["version"] == 1
    assert created["visibility"] == "private"
    assert created["rating"] == {"average": 0.0, "count": 0}
    assert created["installs"] == 0
    assert created["category"] == "demo"
    url = f"/api/v1/templates/{created['id']}"

    got = await client.get(url, headers=admin)
    assert got.status_code == 200
    assert got.json() == created
    assert (
        await client.get(url, headers={**admin, "If-None-Match": got.headers["ETag"]})
    ).status_code == 304

    changed = await client.put(url, json=body(description="Greets warmly."), headers=admin)
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2
    assert changed.json()["description"] == "Greets warmly."
    same = await client.put(url, json=body(description="Greets warmly."), headers=admin)
    assert same.json()["version"] == 2  # the same content is not a new version

    stale = await client.put(
        url, json=body(name="x"), headers={**admin, "If-Match": got.headers["ETag"]}
    )
    assert stale.status_code == 412

    versions = await client.get(f"{url}/versions", headers=admin)
    assert versions.status_code == 200
    data = versions.json()["data"]
    assert [v["version"] for v in data] == [2, 1]
    assert [v["description"] for v in data] == ["Greets warmly.", "Greets someone politely."]

    deleted = await client.delete(url, headers=admin)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=admin)).status_code == 404


async def test_bad_templates_are_422_naming_the_field(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    undeclared = body()
    undeclared["definition"]["steps"][0]["with"]["x"] = "{{ params.missing }}"
    response = await client.post("/api/v1/templates", json=undeclared, headers=admin)
    assert response.status_code == 422
    assert "missing" in response.json()["detail"]

    bad_schema = body(parameters={"type": "object", "properties": {"a": {"type": "nope"}}})
    response = await client.post("/api/v1/templates", json=bad_schema, headers=admin)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][:2] == ["body", "parameters"]

    # A regex that needs backtracking (here a look-ahead) is refused: parameters are
    # matched by RE2, in linear time, whoever sends them.
    backtracking = body(
        parameters={"type": "object", "properties": {"a": {"type": "string", "pattern": "(?=a)a"}}}
    )
    response = await client.post("/api/v1/templates", json=backtracking, headers=admin)
    assert response.status_code == 422
    assert "(?=a)a" in response.json()["detail"]
    assert response.json()["errors"][0]["loc"] == [
        "body",
        "parameters",
        "properties",
        "a",
        "pattern",
    ]

    response = await client.post(
        "/api/v1/templates", json=body(definition={"steps": []}), headers=admin
    )
    assert response.status_code == 422
    response = await client.post("/api/v1/templates", json={"name": "x"}, headers=admin)
    assert response.status_code == 422


async def test_search_filters_and_categories(client: httpx.AsyncClient, admin: Headers) -> None:
    await create(
        client,
        admin,
        name="Invoice parser",
        description="Reads invoices",
        category="finance",
        tags=["pdf"],
    )
    await create(
        client, admin, name="Greeter", description="Says hello", category="demo", tags=["fun"]
    )

    found = await listed(client, admin, q="INVOICE")
    assert [t["name"] for t in found] == ["Invoice parser"]
    found = await listed(client, admin, q="says hello")
    assert [t["name"] for t in found] == ["Greeter"]
    assert await listed(client, admin, q="hello invoice") == []

    assert [t["name"] for t in await listed(client, admin, category="finance")] == [
        "Invoice parser"
    ]
    assert [t["name"] for t in await listed(client, admin, tag="fun")] == ["Greeter"]
    private = await listed(client, admin, visibility="private")
    assert sorted(t["name"] for t in private) == ["Greeter", "Invoice parser"]
    public = await listed(client, admin, visibility="public", limit=100)
    assert len(public) >= 8
    assert all(t["slug"] for t in public)

    trimmed = await listed(client, admin, fields="name", category="finance")
    assert trimmed == [{"id": trimmed[0]["id"], "name": "Invoice parser"}]
    bad = await client.get("/api/v1/templates", params={"colour": "red"}, headers=admin)
    assert bad.status_code == 400
    bad = await client.get("/api/v1/templates", params={"sort": "stars:desc"}, headers=admin)
    assert bad.status_code == 400

    categories = await client.get("/api/v1/templates/categories", headers=admin)
    assert categories.status_code == 200
    counts = {c["name"]: c["count"] for c in categories.json()["data"]}
    assert counts["finance"] == 1
    assert counts["demo"] == 1
    assert len(counts) >= 4  # the starters' categories too


async def test_viewers_read_but_do_not_write(
    client: httpx.AsyncClient, admin: Headers, viewer: Headers
) -> None:
    created = await create(client, admin)
    published = await client.post(
        f"/api/v1/templates/{created['id']}/publish", json={"visibility": "tenant"}, headers=admin
    )
    assert published.status_code == 200
    assert (
        await client.get(f"/api/v1/templates/{created['id']}", headers=viewer)
    ).status_code == 200
    refused = await client.post("/api/v1/templates", json=body(), headers=viewer)
    assert refused.status_code == 403
    refused = await client.post(
        f"/api/v1/templates/{created['id']}/ratings", json={"stars": 5}, headers=viewer
    )
    assert refused.status_code == 403
