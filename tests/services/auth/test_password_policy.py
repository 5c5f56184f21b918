"""The password policy: length, common passwords, repeated characters, the email's name."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from orchestrion.platform import create_embedded_app
from tests.conftest import ADMIN_EMAIL, login, make_settings
from tests.fixtures.lifespan import in_process
from tests.fixtures.processes import run_command

AUTH = "/api/v1/auth"


def _refused(response: httpx.Response, rule: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["title"] == "Weak Password"
    assert problem["errors"] == [{"loc": ["body", "password"], "msg": rule}]


@pytest.mark.parametrize(
    ("password", "rule", "detail"),
    [
        ("short-pass1", "too short", "ORCHESTRION_AUTH__PASSWORD_MIN_LENGTH"),
        ("aaaaaaaaaaaaaaaa", "one repeated character", "repeated"),
        ("qwertyuiop123", "common password", "common passwords"),
        ("Password2024!", "common password", "common passwords"),
        ("1qaz2wsx3edc4rfv", "common password", "common passwords"),
        ("Jennifer1999-x", "contains the email name", "email address's name"),
    ],
)
async def test_weak_passwords_are_refused_on_creation(
    client, admin_headers, password: str, rule: str, detail: str
) -> None:
    response = await client.post(
        f"{AUTH}/users",
        json={"email": "jennifer1999@example.com", "password": password, "roles": ["viewer"]},
        headers=admin_headers,
    )
    _refused(response, rule)
    assert detail in response.json()["detail"]


async def test_weak_passwords_are_refused_on_change(client, admin_headers) -> None:
    created = await client.post(
        f"{AUTH}/users",
        json={"email": "kim@example.com", "password": "a-strong-first-one", "roles": ["viewer"]},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    url = f"{AUTH}/users/{created.json()['id']}"
    _refused(
        await client.patch(url, json={"password": "letmein"}, headers=admin_headers), "too short"
    )
    _refused(
        await client.patch(url, json={"password": "iloveyou12345"}, headers=admin_headers),
        "common password",
    )
    _refused(
        await client.patch(url, json={"password": "kim-is-the-best-1"}, headers=admin_headers),
        "contains the email name",
    )
    # Refused changes changed nothing.
    assert (await login(client, "kim@example.com", "a-strong-first-one"))["access_token"]


async def test_the_minimum_length_is_a_setting(tmp_path: Path, database_url: str) -> None:
    long_enough = "a-bootstrap-password-of-33-chars"
    settings = make_settings(
        tmp_path,
        database_url,
        auth={"password_min_length": 24},
        admin_password=SecretStr(long_enough),
    )
    async with in_process(create_embedded_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            tokens = await login(http, ADMIN_EMAIL, long_enough)
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            body = {"email": "lee@example.com", "password": "twenty-characters-ok", "roles": []}
            response = await http.post(f"{AUTH}/users", json=body, headers=headers)
            _refused(response, "too short")
            assert "at least 24 characters" in response.json()["detail"]


def test_the_list_ships_with_the_package() -> None:
    from orchestrion.services.auth.passwords import common_passwords

    listed = common_passwords()
    assert len(listed) >= 8000
    assert {"password123", "qwertyuiop", "iloveyou123"} <= listed


def test_the_command_line_and_the_bootstrap_admin_follow_the_policy(tmp_path: Path) -> None:
    weak = run_command(
        tmp_path, "users", "create", "--email", "ed@example.com", "--password", "qwertyuiop123",
        ORCHESTRION_ADMIN_PASSWORD="a-good-root-pass1",
    )  # fmt: skip
    assert weak.returncode == 1, weak.stdout + weak.stderr
    assert "common passwords" in " ".join(weak.stderr.split())

    (tmp_path / "other").mkdir()
    bootstrap = run_command(
        tmp_path / "other", "users", "create", "--email", "ed@example.com",
        "--password", "editor-pass-1", ORCHESTRION_ADMIN_PASSWORD="admin",
    )  # fmt: skip
    assert bootstrap.returncode == 2, bootstrap.stdout + bootstrap.stderr
    assert "ORCHESTRION_ADMIN_PASSWORD" in " ".join(bootstrap.stderr.split())
    assert "Traceback" not in bootstrap.stderr
