"""Revocation takes effect at once at the gateway (embedded shape), although it caches
verified tokens and API-key answers: the very next request is refused.

Each test first uses the credential once so that the gateway holds it in its cache; a
request to the workflows service (which trusts the gateway's identity header and checks
no session itself) then shows what the gateway decided.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import login, user_headers

AUTH = "/api/v1/auth"
WORKFLOWS = "/api/v1/workflows"
DEFINITION = {"name": "w", "steps": [{"id": "a", "type": "transform", "with": {}}]}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _user(
    client: httpx.AsyncClient, admin_headers: dict[str, str], email: str, roles: list[str]
) -> tuple[str, dict[str, Any]]:
    created = await client.post(
        f"{AUTH}/users",
        json={"email": email, "password": "user-password-1", "roles": roles},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"]), await login(client, email, "user-password-1")


async def _key(client: httpx.AsyncClient, headers: dict[str, str], scopes: list[str]) -> Any:
    created = await client.post(
        f"{AUTH}/api-keys", json={"name": "k", "scopes": scopes}, headers=headers
    )
    assert created.status_code == 201, created.text
    return created.json()


async def test_a_deleted_api_key_is_refused_by_the_very_next_request(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    key = await _key(client, admin_headers, ["workflows:read"])
    for headers in ({"X-API-Key": key["key"]}, _bearer(key["key"])):
        assert (await client.get(WORKFLOWS, headers=headers)).status_code == 200
    deleted = await client.delete(f"{AUTH}/api-keys/{key['id']}", headers=admin_headers)
    assert deleted.status_code == 204
    for headers in ({"X-API-Key": key["key"]}, _bearer(key["key"])):
        refused = await client.get(WORKFLOWS, headers=headers)
        assert refused.status_code == 401, refused.text


async def test_a_rotated_api_key_s_old_secret_is_refused_at_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    key = await _key(client, admin_headers, ["workflows:read"])
    assert (await client.get(WORKFLOWS, headers={"X-API-Key": key["key"]})).status_code == 200
    rotated = await client.post(f"{AUTH}/api-keys/{key['id']}/rotate", headers=admin_headers)
    assert rotated.status_code == 200, rotated.text
    old = await client.get(WORKFLOWS, headers={"X-API-Key": key["key"]})
    assert old.status_code == 401
    new = await client.get(WORKFLOWS, headers={"X-API-Key": rotated.json()["key"]})
    assert new.status_code == 200


async def test_logout_refuses_the_access_token_at_once_everywhere(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    _, tokens = await _user(client, admin_headers, "out@example.com", ["editor"])
    headers = _bearer(tokens["access_token"])
    assert (await client.get(WORKFLOWS, headers=headers)).status_code == 200
    assert (await client.post(f"{AUTH}/logout", headers=headers)).status_code == 204
    refused = await client.get(WORKFLOWS, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "this session has ended; log in again"
    # Only that session ended: another login of the same user works.
    again = await login(client, "out@example.com", "user-password-1")
    assert (await client.get(WORKFLOWS, headers=_bearer(again["access_token"]))).status_code == 200


async def test_a_reused_refresh_token_refuses_the_session_s_access_tokens(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    _, first = await _user(client, admin_headers, "reuse@example.com", ["viewer"])
    second = await client.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})
    headers = _bearer(second.json()["access_token"])
    assert (await client.get(WORKFLOWS, headers=headers)).status_code == 200
    reused = await client.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert (await client.get(WORKFLOWS, headers=headers)).status_code == 401


async def test_demotion_ends_sessions_and_shrinks_api_keys_at_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """A demoted user's access tokens (which carry the old rights) are refused at once,
    their refresh tokens too; their API keys keep working with the lower rights."""
    user_id, tokens = await _user(client, admin_headers, "demo@example.com", ["editor"])
    headers = _bearer(tokens["access_token"])
    key = await _key(client, headers, ["workflows:read", "workflows:write"])
    key_headers = {"X-API-Key": key["key"]}
    assert (await client.post(WORKFLOWS, json=DEFINITION, headers=headers)).status_code == 201
    assert (await client.post(WORKFLOWS, json=DEFINITION, headers=key_headers)).status_code == 201

    patched = await client.patch(
        f"{AUTH}/users/{user_id}", json={"roles": ["viewer"]}, headers=admin_headers
    )
    assert patched.status_code == 200, patched.text
    assert (await client.get(WORKFLOWS, headers=headers)).status_code == 401
    assert (await client.post(WORKFLOWS, json=DEFINITION, headers=headers)).status_code == 401
    refreshed = await client.post(
        f"{AUTH}/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    # The key's scopes now meet the owner's lower rights.
    assert (await client.post(WORKFLOWS, json=DEFINITION, headers=key_headers)).status_code == 403
    assert (await client.get(WORKFLOWS, headers=key_headers)).status_code == 200

    again = _bearer((await login(client, "demo@example.com", "user-password-1"))["access_token"])
    assert (await client.get(WORKFLOWS, headers=again)).status_code == 200
    assert (await client.post(WORKFLOWS, json=DEFINITION, headers=again)).status_code == 403


async def test_promotion_keeps_sessions(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """Gaining rights ends nothing: tokens keep their (lower) rights until refreshed."""
    user_id, tokens = await _user(client, admin_headers, "up@example.com", ["viewer"])
    headers = _bearer(tokens["access_token"])
    assert (await client.get(WORKFLOWS, headers=headers)).status_code == 200
    patched = await client.patch(
        f"{AUTH}/users/{user_id}", json={"roles": ["editor"]}, headers=admin_headers
    )
    assert patched.status_code == 200
    assert (await client.get(WORKFLOWS, headers=headers)).status_code == 200
    assert (await client.post(WORKFLOWS, json=DEFINITION, headers=headers)).status_code == 403
    refreshed = await client.post(
        f"{AUTH}/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    promoted = _bearer(refreshed.json()["access_token"])
    assert (await client.post(WORKFLOWS, json=DEFINITION, headers=promoted)).status_code == 201


async def test_deleting_or_disabling_a_user_refuses_their_credentials_at_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for change in ("delete", "disable", "password"):
        email = f"{change}-case@example.com"
        user_id, tokens = await _user(client, admin_headers, email, ["editor"])
        headers = _bearer(tokens["access_token"])
        key_headers = {"X-API-Key": (await _key(client, headers, ["workflows:read"]))["key"]}
        for using in (headers, key_headers):
            assert (await client.get(WORKFLOWS, headers=using)).status_code == 200
        url = f"{AUTH}/users/{user_id}"
        if change == "delete":
            assert (await client.delete(url, headers=admin_headers)).status_code == 204
        elif change == "disable":
            disabled = await client.patch(url, json={"is_active": False}, headers=admin_headers)
            assert disabled.status_code == 200
        else:
            changed = await client.patch(
                url, json={"password": "another-password-2"}, headers=admin_headers
            )
            assert changed.status_code == 200
        assert (await client.get(WORKFLOWS, headers=headers)).status_code == 401, change
        # A new password leaves the user's keys alone; the other two stop them.
        expected = 200 if change == "password" else 401
        assert (await client.get(WORKFLOWS, headers=key_headers)).status_code == expected, change


async def test_other_users_keep_working(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    stays = await user_headers(client, admin_headers, email="stays@example.com", roles=["editor"])
    goes_id, _ = await _user(client, admin_headers, "goes@example.com", ["editor"])
    assert (
        await client.delete(f"{AUTH}/users/{goes_id}", headers=admin_headers)
    ).status_code == 204
    assert (await client.get(WORKFLOWS, headers=stays)).status_code == 200
    assert (await client.get(WORKFLOWS, headers=admin_headers)).status_code == 200
