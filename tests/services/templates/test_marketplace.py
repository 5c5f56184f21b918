"""Visibility across tenants, ownership, ratings, installs and ranking."""

from __future__ import annotations

import httpx

from tests.services.templates.conftest import Headers, body, create, listed


async def _publish(client: httpx.AsyncClient, headers: Headers, template_id: str, to: str) -> None:
    response = await client.post(
        f"/api/v1/templates/{template_id}/publish", json={"visibility": to}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["visibility"] == to


async def test_visibility_across_tenants_and_users(
    client: httpx.AsyncClient, admin: Headers, editor: Headers, other: Headers
) -> None:
    private = await create(client, admin, name="Mine")
    shared = await create(client, admin, name="Ours")
    public = await create(client, admin, name="Everyone's")
    await _publish(client, admin, shared["id"], "tenant")
    await _publish(client, admin, public["id"], "public")

    def names(items: list[dict[str, object]]) -> set[object]:
        return {t["name"] for t in items if not t["slug"]}

    assert names(await listed(client, admin, limit=100)) == {"Mine", "Ours", "Everyone's"}
    assert names(await listed(client, editor, limit=100)) == {"Ours", "Everyone's"}
    assert names(await listed(client, other, limit=100)) == {"Everyone's"}

    for headers, template, status in [
        (editor, private, 404),
        (other, private, 404),
        (other, shared, 404),
        (other, public, 200),
        (editor, shared, 200),
    ]:
        got = await client.get(f"/api/v1/templates/{template['id']}", headers=headers)
        assert got.status_code == status, (template["name"], got.text)

    # Only the owning tenant changes a template: another tenant seeing it gets a 403.
    url = f"/api/v1/templates/{public['id']}"
    assert (await client.put(url, json=body(name="hijacked"), headers=other)).status_code == 403
    assert (await client.delete(url, headers=other)).status_code == 403
    refused = await client.post(f"{url}/publish", json={"visibility": "private"}, headers=other)
    assert refused.status_code == 403
    assert (
        await client.put(f"/api/v1/templates/{private['id']}", json=body(), headers=other)
    ).status_code == 404
    # The tenant's other editor may change the tenant's shared template.
    changed = await client.put(
        f"/api/v1/templates/{shared['id']}", json=body(name="Ours v2"), headers=editor
    )
    assert changed.status_code == 200
    assert changed.json()["version"] == 2

    # Starters belong to the platform: every tenant sees them, none edits them.
    starter = (await listed(client, other, visibility="public", q="translation"))[0]
    url = f"/api/v1/templates/{starter['id']}"
    assert (await client.put(url, json=body(), headers=admin)).status_code == 403
    assert (await client.delete(url, headers=other)).status_code == 403


async def test_ratings_replace_and_average(
    client: httpx.AsyncClient, admin: Headers, editor: Headers, other: Headers
) -> None:
    template = await create(client, admin)
    await _publish(client, admin, template["id"], "public")
    url = f"/api/v1/templates/{template['id']}/ratings"

    first = await client.post(url, json={"stars": 2, "comment": "meh"}, headers=admin)
    assert first.status_code == 201, first.text
    assert first.json()["rating"] == {"average": 2.0, "count": 1}
    again = await client.post(url, json={"stars": 4}, headers=admin)
    assert again.json()["stars"] == 4
    assert again.json()["comment"] is None
    assert again.json()["rating"] == {"average": 4.0, "count": 1}  # replaced, not added
    await client.post(url, json={"stars": 5}, headers=editor)
    third = await client.post(url, json={"stars": 1}, headers=other)
    assert third.json()["rating"]["count"] == 3
    assert abs(third.json()["rating"]["average"] - 10 / 3) < 1e-3

    got = await client.get(f"/api/v1/templates/{template['id']}", headers=other)
    assert got.json()["rating"]["count"] == 3
    assert round(got.json()["rating"]["average"], 2) == 3.33

    for stars in (0, 6):
        bad = await client.post(url, json={"stars": stars}, headers=admin)
        assert bad.status_code == 422


async def test_installs_count_instantiations_and_lists_rank(
    client: httpx.AsyncClient, admin: Headers, other: Headers
) -> None:
    popular = await create(client, admin, name="Popular")
    loved = await create(client, admin, name="Loved")
    for template in (popular, loved):
        await _publish(client, admin, template["id"], "public")
    for _ in range(3):
        made = await client.post(
            f"/api/v1/templates/{popular['id']}/instantiate",
            json={"parameters": {"times": 1}},
            headers=other,
        )
        assert made.status_code == 201, made.text
    await client.post(f"/api/v1/templates/{loved['id']}/ratings", json={"stars": 5}, headers=other)
    await client.post(
        f"/api/v1/templates/{popular['id']}/ratings", json={"stars": 3}, headers=other
    )

    got = await client.get(f"/api/v1/templates/{popular['id']}", headers=admin)
    assert got.json()["installs"] == 3
    by_installs = await listed(client, admin, sort="installs:desc", limit=3)
    assert by_installs[0]["name"] == "Popular"
    by_rating = await listed(client, admin, sort="rating:desc", limit=3)
    assert [t["name"] for t in by_rating[:2]] == ["Loved", "Popular"]

    # A replayed instantiation (same Idempotency-Key) is the same workflow, not an install.
    keyed = {**admin, "Idempotency-Key": "k-1"}
    url = f"/api/v1/templates/{loved['id']}/instantiate"
    one = await client.post(url, json={"parameters": {"times": 2}}, headers=keyed)
    two = await client.post(url, json={"parameters": {"times": 2}}, headers=keyed)
    assert one.json()["id"] == two.json()["id"]
    got = await client.get(f"/api/v1/templates/{loved['id']}", headers=admin)
    assert got.json()["installs"] == 1
