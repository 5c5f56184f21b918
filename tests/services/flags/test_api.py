"""Flags through the gateway on SQLite and PostgreSQL: management, stickiness, rules,
the kill switch, tenancy and clear 422s."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import user_headers
from tests.services.flags.conftest import Headers

FLAGS = "/api/v1/flags"


async def create(client: httpx.AsyncClient, headers: Headers, **body: Any) -> dict[str, Any]:
    response = await client.post(FLAGS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{FLAGS}/{body['key']}"
    created: dict[str, Any] = response.json()
    return created


async def evaluate(client: httpx.AsyncClient, headers: Headers, key: str) -> dict[str, Any]:
    response = await client.get(f"{FLAGS}/{key}/evaluate", headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_manage_a_flag_with_etags(client: httpx.AsyncClient, admin_headers: Headers) -> None:
    flag = await create(client, admin_headers, key="new-editor", enabled=True, rollout=25)
    assert flag["version"] == 1
    assert flag["variants"] == []
    assert (
        await client.post(FLAGS, json={"key": "new-editor"}, headers=admin_headers)
    ).status_code == 409
    got = await client.get(f"{FLAGS}/new-editor", headers=admin_headers)
    assert got.status_code == 200
    etag = got.headers["etag"]
    cached = await client.get(
        f"{FLAGS}/new-editor", headers={**admin_headers, "If-None-Match": etag}
    )
    assert cached.status_code == 304
    changed = await client.patch(
        f"{FLAGS}/new-editor", json={"rollout": 50}, headers={**admin_headers, "If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["rollout"], changed.json()["version"]) == (50, 2)
    stale = await client.patch(
        f"{FLAGS}/new-editor", json={"rollout": 60}, headers={**admin_headers, "If-Match": etag}
    )
    assert stale.status_code == 412
    listed = await client.get(f"{FLAGS}?key=new-editor", headers=admin_headers)
    assert listed.status_code == 200
    assert [f["key"] for f in listed.json()["data"]] == ["new-editor"]
    assert (await client.get(f"{FLAGS}?colour=red", headers=admin_headers)).status_code == 400
    gone = await client.delete(f"{FLAGS}/new-editor", headers={**admin_headers, "If-Match": etag})
    assert gone.status_code == 412
    assert (await client.delete(f"{FLAGS}/new-editor", headers=admin_headers)).status_code == 204
    assert (await client.get(f"{FLAGS}/new-editor", headers=admin_headers)).status_code == 404
    missing = await client.get(f"{FLAGS}/new-editor/evaluate", headers=admin_headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


BAD: list[tuple[dict[str, Any], list[Any]]] = [
    ({"key": "x", "rollout": 101}, ["body", "rollout"]),
    ({"key": "x", "rollout": -1}, ["body", "rollout"]),
    ({"key": "bad key"}, ["body", "key"]),
    ({"key": "x", "variants": [{"name": "a", "weight": -1}]}, ["body", "variants", 0, "weight"]),
    ({"key": "x", "variants": [{"name": "a", "weight": 0}]}, ["body", "variants"]),
    (
        {"key": "x", "variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]},
        ["body", "variants"],
    ),
    ({"key": "x", "rules": [{"roles": ["viewer"]}]}, ["body", "rules", 0, "enabled"]),
    (
        {
            "key": "x",
            "variants": [{"name": "a", "weight": 1}],
            "rules": [{"enabled": False, "variant": "a"}],
        },
        ["body", "rules", 0, "variant"],
    ),
    ({"key": "x", "rollout": False}, ["body", "rollout"]),
    ({"key": "x", "enabled": "yes"}, ["body", "enabled"]),
    (
        {"key": "x", "rules": [{"attributes": {"plan": "pro"}, "enabled": True}]},
        ["body", "rules", 0, "attributes", "plan", "[key]"],
    ),
    (
        {"key": "x", "rules": [{"enabled": True, "variant": "nope"}]},
        ["body", "rules", 0, "variant"],
    ),
]


async def test_bad_flags_are_422s_naming_the_field(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    for body, loc in BAD:
        response = await client.post(FLAGS, json=body, headers=admin_headers)
        assert response.status_code == 422, (body, response.text)
        locs = [error["loc"] for error in response.json()["errors"]]
        assert any(found[: len(loc)] == loc for found in locs), (body, locs)
    await create(client, admin_headers, key="x", variants=[{"name": "a", "weight": 1}])
    response = await client.patch(
        f"{FLAGS}/x", json={"rules": [{"enabled": True, "variant": "b"}]}, headers=admin_headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "rules", 0, "variant"]


async def test_stickiness_and_a_growing_rollout(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    variants = [{"name": "blue", "weight": 1}, {"name": "green", "weight": 1}]
    await create(client, admin_headers, key="colour", enabled=True, rollout=50, variants=variants)
    users = [admin_headers] + [
        await user_headers(client, admin_headers, email=f"u{n}@example.com", roles=["viewer"])
        for n in range(3)
    ]
    first = [await evaluate(client, headers, "colour") for headers in users]
    for _ in range(100):
        assert await evaluate(client, users[1], "colour") == first[1]
    for headers, answer in zip(users, first, strict=True):
        assert answer["key"] == "colour"
        assert answer["reason"] == "SPLIT"
        assert (answer["variant"] is not None) == answer["enabled"]
        assert await evaluate(client, headers, "colour") == answer
    patched = await client.patch(f"{FLAGS}/colour", json={"rollout": 100}, headers=admin_headers)
    assert patched.status_code == 200
    after = [await evaluate(client, headers, "colour") for headers in users]
    assert all(answer["enabled"] for answer in after)
    for before, now in zip(first, after, strict=True):
        if before["enabled"]:
            assert now["variant"] == before["variant"]


async def test_rules_and_the_kill_switch(
    client: httpx.AsyncClient, admin_headers: Headers, viewer: Headers
) -> None:
    rules = [
        {"roles": ["viewer"], "enabled": True, "variant": "beta"},
        {"attributes": {"email": "admin@example.com"}, "enabled": False},
        {"enabled": True},
    ]
    variants = [{"name": "stable", "weight": 100}, {"name": "beta", "weight": 0}]
    await create(client, admin_headers, key="search", enabled=True, variants=variants, rules=rules)
    editor = await user_headers(client, admin_headers, email="ed@example.com", roles=["editor"])
    seen = await evaluate(client, viewer, "search")
    assert (seen["enabled"], seen["variant"], seen["reason"]) == (True, "beta", "TARGETING_MATCH")
    assert (await evaluate(client, admin_headers, "search"))["enabled"] is False
    assert (await evaluate(client, editor, "search"))["variant"] == "stable"
    killed = await client.patch(f"{FLAGS}/search", json={"enabled": False}, headers=admin_headers)
    assert killed.status_code == 200
    for headers in (viewer, admin_headers, editor):
        answer = await evaluate(client, headers, "search")
        assert (answer["enabled"], answer["variant"], answer["reason"]) == (False, None, "DISABLED")


async def test_tenancy_and_rights(
    client: httpx.AsyncClient,
    admin_headers: Headers,
    viewer: Headers,
    other_tenant: str,
    other_admin: Headers,
) -> None:
    await create(client, admin_headers, key="mine", enabled=True, rollout=100)
    # Another tenant sees nothing of it, and cannot manage flags (not a platform admin).
    assert (await client.get(f"{FLAGS}/mine", headers=other_admin)).status_code == 404
    assert (await client.get(f"{FLAGS}/mine/evaluate", headers=other_admin)).status_code == 404
    assert (await client.get(FLAGS, headers=other_admin)).json()["data"] == []
    refused = await client.post(FLAGS, json={"key": "theirs"}, headers=other_admin)
    assert refused.status_code == 403
    peek = await client.get(f"{FLAGS}?tenant_id={other_tenant}", headers=other_admin)
    assert peek.status_code == 200
    assert (
        await client.get(f"{FLAGS}?tenant_id=elsewhere", headers=other_admin)
    ).status_code == 403
    # The platform admin manages the other tenant's flags by naming it.
    made = await client.post(
        f"{FLAGS}?tenant_id={other_tenant}",
        json={
            "key": "mine",
            "enabled": True,
            "rollout": 0,
            "rules": [{"tenants": [other_tenant], "enabled": True}],
        },
        headers=admin_headers,
    )
    assert made.status_code == 201, made.text
    assert made.json()["tenant_id"] == other_tenant
    theirs = await evaluate(client, other_admin, "mine")
    assert (theirs["enabled"], theirs["reason"]) == (True, "TARGETING_MATCH")
    assert (await evaluate(client, admin_headers, "mine"))["reason"] == "SPLIT"
    # Viewers evaluate but neither read definitions nor change them; anonymous callers nothing.
    assert (await evaluate(client, viewer, "mine"))["enabled"] is True
    assert (await client.get(FLAGS, headers=viewer)).status_code == 403
    assert (
        await client.patch(f"{FLAGS}/mine", json={"enabled": False}, headers=viewer)
    ).status_code == 403
    assert (await client.get(f"{FLAGS}/mine/evaluate")).status_code == 401
