"""Tenants, users and API keys through the gateway: who may do what, and isolation."""

from __future__ import annotations

import httpx

from tests.conftest import login, user_headers
from tests.fixtures.lifespan import in_process

AUTH = "/api/v1/auth"


async def _tenant(client: httpx.AsyncClient, admin_headers: dict[str, str], name: str) -> str:
    created = await client.post(f"{AUTH}/tenants", json={"name": name}, headers=admin_headers)
    assert created.status_code == 201, created.text
    assert set(created.json()) >= {"id", "name"}
    return str(created.json()["id"])


async def test_tenants_are_created_by_platform_admins_only(client, admin_headers) -> None:
    acme = await _tenant(client, admin_headers, "acme")
    duplicate = await client.post(f"{AUTH}/tenants", json={"name": "acme"}, headers=admin_headers)
    assert duplicate.status_code == 409
    listed = (await client.get(f"{AUTH}/tenants", headers=admin_headers)).json()
    assert {t["name"] for t in listed["data"]} == {"default", "acme"}

    acme_admin = await user_headers(
        client, admin_headers, email="boss@acme.test", roles=["admin"], tenant_id=acme
    )
    refused = await client.post(f"{AUTH}/tenants", json={"name": "other"}, headers=acme_admin)
    assert refused.status_code == 403
    own = (await client.get(f"{AUTH}/tenants", headers=acme_admin)).json()
    assert [t["id"] for t in own["data"]] == [acme]


async def test_user_lifecycle(client, admin_headers) -> None:
    created = await client.post(
        f"{AUTH}/users",
        json={"email": "Ed@Example.com", "password": "editor-pass-1", "roles": ["editor"]},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["email"] == "ed@example.com"
    assert "password_hash" not in user
    assert "workflows:write" in user["permissions"]
    user_url = f"{AUTH}/users/{user['id']}"

    got = await client.get(user_url, headers=admin_headers)
    assert got.status_code == 200
    etag = got.headers["etag"]
    stale = await client.patch(
        user_url, json={"roles": ["viewer"]}, headers={**admin_headers, "If-Match": '"nope"'}
    )
    assert stale.status_code == 412
    patched = await client.patch(
        user_url, json={"roles": ["viewer"]}, headers={**admin_headers, "If-Match": etag}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["roles"] == ["viewer"]

    tokens = await login(client, "ed@example.com", "editor-pass-1")
    me = await client.get(
        f"{AUTH}/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.json()["roles"] == ["viewer"]

    # A new password ends existing sessions.
    await client.patch(user_url, json={"password": "new-password-9"}, headers=admin_headers)
    refreshed = await client.post(
        f"{AUTH}/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    await login(client, "ed@example.com", "new-password-9")

    listed = await client.get(f"{AUTH}/users", params={"sort": "email:asc"}, headers=admin_headers)
    assert [u["email"] for u in listed.json()["data"]] == ["admin@example.com", "ed@example.com"]

    assert (await client.delete(user_url, headers=admin_headers)).status_code == 204
    assert (await client.get(user_url, headers=admin_headers)).status_code == 404
    gone = await client.post(
        f"{AUTH}/login", json={"email": "ed@example.com", "password": "new-password-9"}
    )
    assert gone.status_code == 401


async def test_user_input_is_checked(client, admin_headers) -> None:
    cases = [
        ({"email": "x@example.com", "password": "short", "roles": ["viewer"]}, 422),
        ({"email": "not-an-email", "password": "long-enough-1", "roles": ["viewer"]}, 422),
        ({"email": "x@example.com", "password": "long-enough-1", "roles": ["god"]}, 422),
        ({"email": "admin@example.com", "password": "long-enough-1", "roles": []}, 409),
        ({"email": "x@example.com", "password": "long-enough-1", "colour": "red"}, 422),
    ]
    for body, status in cases:
        response = await client.post(f"{AUTH}/users", json=body, headers=admin_headers)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_admins_cannot_lock_themselves_out(client, admin_headers) -> None:
    me = (await client.get(f"{AUTH}/me", headers=admin_headers)).json()
    url = f"{AUTH}/users/{me['id']}"
    assert (
        await client.patch(url, json={"roles": ["viewer"]}, headers=admin_headers)
    ).status_code == 409
    assert (await client.delete(url, headers=admin_headers)).status_code == 409


async def test_cross_tenant_users_are_invisible(client, admin_headers) -> None:
    acme = await _tenant(client, admin_headers, "acme")
    globex = await _tenant(client, admin_headers, "globex")
    acme_admin = await user_headers(
        client, admin_headers, email="a@acme.test", roles=["admin"], tenant_id=acme
    )
    created = await client.post(
        f"{AUTH}/users",
        json={"email": "g@globex.test", "password": "globex-pass-1", "roles": ["viewer"],
              "tenant_id": globex},
        headers=admin_headers,
    )  # fmt: skip
    globex_user = created.json()["id"]
    assert (await client.get(f"{AUTH}/users/{globex_user}", headers=acme_admin)).status_code == 404
    patch = await client.patch(
        f"{AUTH}/users/{globex_user}", json={"roles": ["admin"]}, headers=acme_admin
    )
    assert patch.status_code == 404
    listed = (await client.get(f"{AUTH}/users", headers=acme_admin)).json()
    assert [u["email"] for u in listed["data"]] == ["a@acme.test"]
    into_other = await client.post(
        f"{AUTH}/users",
        json={"email": "x@acme.test", "password": "xxxxxxxx1", "tenant_id": globex},
        headers=acme_admin,
    )
    assert into_other.status_code == 403


async def test_viewers_and_editors_cannot_administer(client, admin_headers) -> None:
    viewer = await user_headers(client, admin_headers, email="v@example.com", roles=["viewer"])
    editor = await user_headers(client, admin_headers, email="e@example.com", roles=["editor"])
    body = {"email": "n@example.com", "password": "new-user-pass", "roles": ["admin"]}
    for headers in (viewer, editor):
        assert (await client.post(f"{AUTH}/users", json=body, headers=headers)).status_code == 403
        assert (await client.get(f"{AUTH}/users", headers=headers)).status_code == 403
        assert (await client.get(f"{AUTH}/audit", headers=headers)).status_code == 403
    refused = await client.post(
        "/api/v1/workflows",
        json={"name": "w", "steps": [{"id": "a", "type": "transform", "with": {}}]},
        headers=viewer,
    )
    assert refused.status_code == 403


async def test_api_keys_work_within_their_scopes(client, admin_headers) -> None:
    editor = await user_headers(client, admin_headers, email="e@example.com", roles=["editor"])
    created = await client.post(
        f"{AUTH}/api-keys",
        json={"name": "ci", "scopes": ["workflows:read"]},
        headers=editor,
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("orn_")
    key_id = created.json()["id"]

    as_bearer = await client.get("/api/v1/workflows", headers={"Authorization": f"Bearer {key}"})
    assert as_bearer.status_code == 200, as_bearer.text
    as_header = await client.get("/api/v1/workflows", headers={"X-API-Key": key})
    assert as_header.status_code == 200
    write = await client.post(
        "/api/v1/workflows",
        json={"name": "w", "steps": [{"id": "a", "type": "transform", "with": {}}]},
        headers={"X-API-Key": key},
    )
    assert write.status_code == 403  # the key was not given workflows:write

    listed = (await client.get(f"{AUTH}/api-keys", headers=editor)).json()["data"]
    assert [k["id"] for k in listed] == [key_id]
    assert "key" not in listed[0]
    assert "secret_hash" not in listed[0]

    rotated = await client.post(f"{AUTH}/api-keys/{key_id}/rotate", headers=editor)
    assert rotated.status_code == 200, rotated.text
    new_key = rotated.json()["key"]
    assert rotated.json()["id"] == key_id
    assert new_key != key
    assert (
        await client.get("/api/v1/workflows", headers={"X-API-Key": new_key})
    ).status_code == 200

    assert (await client.delete(f"{AUTH}/api-keys/{key_id}", headers=editor)).status_code == 204


async def test_revoked_and_expired_keys_stop_working(tmp_path, database_url: str) -> None:

    from orchestrion.platform import create_embedded_app
    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings

    settings = make_settings(tmp_path, database_url, auth={"api_key_cache_seconds": 0})
    app = create_embedded_app(settings)
    async with in_process(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            tokens = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            created = (
                await http.post(
                    f"{AUTH}/api-keys",
                    json={"name": "k", "scopes": ["workflows:read"]},
                    headers=headers,
                )
            ).json()
            key_headers = {"X-API-Key": created["key"]}
            assert (await http.get("/api/v1/workflows", headers=key_headers)).status_code == 200
            await http.delete(f"{AUTH}/api-keys/{created['id']}", headers=headers)
            assert (await http.get("/api/v1/workflows", headers=key_headers)).status_code == 401
            forged = {"X-API-Key": created["key"][:-4] + "AAAA"}
            assert (await http.get("/api/v1/workflows", headers=forged)).status_code == 401
            past = await http.post(
                f"{AUTH}/api-keys",
                json={
                    "name": "k",
                    "scopes": ["workflows:read"],
                    "expires_at": "2001-01-01T00:00:00Z",
                },
                headers=headers,
            )
            assert past.status_code == 422


async def test_api_key_scopes_cannot_exceed_the_owner(client, admin_headers) -> None:
    viewer = await user_headers(client, admin_headers, email="v@example.com", roles=["viewer"])
    response = await client.post(
        f"{AUTH}/api-keys", json={"name": "x", "scopes": ["workflows:write"]}, headers=viewer
    )
    assert response.status_code == 403  # viewers may not make keys at all
    editor = await user_headers(client, admin_headers, email="e@example.com", roles=["editor"])
    too_much = await client.post(
        f"{AUTH}/api-keys", json={"name": "x", "scopes": ["users:write"]}, headers=editor
    )
    assert too_much.status_code == 403  # PrivilegeEscalation: more than the editor holds
    assert "users:write" in too_much.json()["detail"]
    unknown = await client.post(
        f"{AUTH}/api-keys", json={"name": "x", "scopes": ["teleport"]}, headers=editor
    )
    assert unknown.status_code == 422
