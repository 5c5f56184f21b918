"""Nobody acts on a principal with more power than their own; a key never yields more
than its scopes (services/auth/powers.py)."""

from __future__ import annotations

import httpx

from tests.conftest import login, user_headers

AUTH = "/api/v1/auth"
WORKFLOW = {"name": "w", "steps": [{"id": "a", "type": "transform", "with": {}}]}


def _escalation(response: httpx.Response, *missing: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["title"] == "Privilege Escalation"
    assert problem["type"].endswith("/privilege-escalation")
    for permission in missing:
        assert permission in problem["detail"]


async def _user(client: httpx.AsyncClient, headers: dict[str, str], **body: object) -> str:
    created = await client.post(f"{AUTH}/users", json=body, headers=headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def test_a_tenant_admin_cannot_take_over_a_platform_admin(client, admin_headers) -> None:
    root = await _user(
        client, admin_headers, email="root@example.com", password="platform-owner-77",
        roles=["admin"], platform_admin=True,
    )  # fmt: skip
    admin = await user_headers(client, admin_headers, email="boss@example.com", roles=["admin"])

    _escalation(
        await client.patch(
            f"{AUTH}/users/{root}", json={"password": "taken-over-pass-1"}, headers=admin
        ),
        "platform:admin",
    )
    _escalation(await client.delete(f"{AUTH}/users/{root}", headers=admin), "platform:admin")
    _escalation(
        await client.patch(f"{AUTH}/users/{root}", json={"is_active": False}, headers=admin),
        "platform:admin",
    )
    # The platform admin is untouched: their password still works.
    assert (await login(client, "root@example.com", "platform-owner-77"))["access_token"]
    # Nor can the admin make a platform admin.
    _escalation(
        await client.post(
            f"{AUTH}/users",
            json={
                "email": "second@example.com",
                "password": "second-root-pass-1",
                "roles": ["admin"],
                "platform_admin": True,
            },
            headers=admin,
        ),
        "platform:admin",
    )
    # Admins still manage their peers and those below them.
    peer = await _user(
        client, admin, email="peer@example.com", password="colleague-pass-1", roles=["admin"]
    )
    changed = await client.patch(
        f"{AUTH}/users/{peer}", json={"password": "colleague-pass-2"}, headers=admin
    )
    assert changed.status_code == 200, changed.text


async def test_a_key_cannot_create_or_raise_users_beyond_its_scopes(client, admin_headers) -> None:
    admin = await user_headers(client, admin_headers, email="boss@example.com", roles=["admin"])
    narrow = await client.post(
        f"{AUTH}/api-keys",
        json={"name": "provisioning", "scopes": ["users:read", "users:write"]},
        headers=admin,
    )
    assert narrow.status_code == 201, narrow.text
    key = {"X-API-Key": narrow.json()["key"]}
    # An admin user made with a key that only holds users:* would hold far more than it.
    _escalation(
        await client.post(
            f"{AUTH}/users",
            json={"email": "new@example.com", "password": "new-admin-pass-1", "roles": ["admin"]},
            headers=key,
        ),
        "workflows:write",
    )
    viewer = await _user(
        client, admin, email="v@example.com", password="viewer-pass-12", roles=["viewer"]
    )
    # The key cannot re-password its own owner (who holds more than the key) either.
    owner = (await client.get(f"{AUTH}/me", headers=admin)).json()["id"]
    _escalation(
        await client.patch(
            f"{AUTH}/users/{owner}", json={"password": "owned-by-key-1"}, headers=key
        )
    )
    # And the owner, an admin, cannot raise a viewer to platform admin-level roles it lacks.
    raised = await client.patch(f"{AUTH}/users/{viewer}", json={"roles": ["admin"]}, headers=admin)
    assert raised.status_code == 200, raised.text


async def test_a_key_manager_key_cannot_rotate_its_owners_broader_key(
    client, admin_headers
) -> None:
    editor = await user_headers(client, admin_headers, email="e@example.com", roles=["editor"])
    broad = await client.post(
        f"{AUTH}/api-keys",
        json={"name": "deploy", "scopes": ["workflows:read", "workflows:write"]},
        headers=editor,
    )
    manager = await client.post(
        f"{AUTH}/api-keys",
        json={"name": "keys", "scopes": ["api_keys:read", "api_keys:write"]},
        headers=editor,
    )
    assert broad.status_code == manager.status_code == 201
    key = {"X-API-Key": manager.json()["key"]}
    broad_id = broad.json()["id"]

    _escalation(
        await client.post(f"{AUTH}/api-keys/{broad_id}/rotate", headers=key), "workflows:write"
    )
    _escalation(await client.delete(f"{AUTH}/api-keys/{broad_id}", headers=key), "workflows:write")
    # The broad key still works with its original secret.
    ok = await client.post(
        "/api/v1/workflows", json=WORKFLOW, headers={"X-API-Key": broad.json()["key"]}
    )
    assert ok.status_code == 201, ok.text
    # A key made by the manager key may hold only what the manager key holds.
    _escalation(
        await client.post(
            f"{AUTH}/api-keys", json={"name": "x", "scopes": ["workflows:write"]}, headers=key
        ),
        "workflows:write",
    )
    within = await client.post(
        f"{AUTH}/api-keys", json={"name": "y", "scopes": ["api_keys:read"]}, headers=key
    )
    assert within.status_code == 201, within.text
    # The owner, logged in, still rotates their own keys.
    rotated = await client.post(f"{AUTH}/api-keys/{broad_id}/rotate", headers=editor)
    assert rotated.status_code == 200, rotated.text


async def test_an_admin_cannot_rotate_a_platform_admins_key(client, admin_headers) -> None:
    root_key = await client.post(
        f"{AUTH}/api-keys",
        json={"name": "root", "scopes": ["users:write", "platform:admin"]},
        headers=admin_headers,
    )
    assert root_key.status_code == 201, root_key.text
    admin = await user_headers(client, admin_headers, email="boss@example.com", roles=["admin"])
    key_id = root_key.json()["id"]
    _escalation(
        await client.post(f"{AUTH}/api-keys/{key_id}/rotate", headers=admin), "platform:admin"
    )
    _escalation(await client.delete(f"{AUTH}/api-keys/{key_id}", headers=admin), "platform:admin")
