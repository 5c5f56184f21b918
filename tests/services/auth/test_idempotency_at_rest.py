"""Stored first responses keep no secret readable: a new API key's secret is encrypted
at rest, a request's digest is keyed, and both survive a rotation of the secret key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.http.idempotency import IdempotencyRecord, request_hash
from orchestrion.platform import create_embedded_app
from orchestrion.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings
from tests.fixtures.lifespan import in_process

AUTH = "/api/v1/auth"
KEY_BODY = {"name": "ci", "scopes": ["workflows:read"]}


async def _rows(settings: Settings) -> list[IdempotencyRecord]:
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            return list((await session.execute(select(IdempotencyRecord))).scalars())
    finally:
        await database.dispose()


async def _create_key(settings: Settings, idempotency_key: str) -> httpx.Response:
    async with in_process(create_embedded_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            tokens = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
            headers: dict[str, Any] = {
                "Authorization": f"Bearer {tokens['access_token']}",
                "Idempotency-Key": idempotency_key,
            }
            return await http.post(f"{AUTH}/api-keys", json=KEY_BODY, headers=headers)


async def test_a_new_api_keys_secret_is_not_stored_in_plain_text(
    client, admin_headers, settings
) -> None:
    headers = {**admin_headers, "Idempotency-Key": "create-ci-key"}
    first = await client.post(f"{AUTH}/api-keys", json=KEY_BODY, headers=headers)
    assert first.status_code == 201, first.text
    raw = first.json()["key"]
    secret = raw.removeprefix("orn_").partition("_")[2]

    (row,) = await _rows(settings)
    assert secret not in row.body
    assert raw not in row.body
    assert '"key"' not in row.body  # not even the shape of the answer is readable

    replay = await client.post(f"{AUTH}/api-keys", json=KEY_BODY, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["key"] == raw
    assert replay.json()["id"] == first.json()["id"]


async def test_a_created_users_password_cannot_be_guessed_from_the_digest(
    client, admin_headers, settings
) -> None:
    body = {"email": "lee@example.com", "password": "a-private-choice-9", "roles": ["viewer"]}
    headers = {**admin_headers, "Idempotency-Key": "create-lee"}
    created = await client.post(f"{AUTH}/users", json=body, headers=headers)
    assert created.status_code == 201, created.text
    (row,) = await _rows(settings)
    full = {**body, "tenant_id": None, "platform_admin": False}
    # An unkeyed digest of the request would let anyone with the table try passwords.
    assert row.request_hash != request_hash(full)
    assert row.request_hash != request_hash(body)
    replay = await client.post(f"{AUTH}/users", json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.json()["id"] == created.json()["id"]
    changed = await client.post(
        f"{AUTH}/users", json={**body, "password": "another-secret-9"}, headers=headers
    )
    assert changed.status_code == 422


async def test_replays_survive_a_rotation_of_the_secret_key(
    tmp_path: Path, database_url: str
) -> None:
    old = make_settings(tmp_path, database_url)
    first = await _create_key(old, "rotation")
    assert first.status_code == 201, first.text
    rotated = make_settings(
        tmp_path,
        database_url,
        secret_key=SecretStr("a-new-secret-key-after-rotation-42"),
        secret_key_previous=old.secret_key,
    )
    replay = await _create_key(rotated, "rotation")
    assert replay.status_code == 201, replay.text
    assert replay.json()["key"] == first.json()["key"]
