"""The ``orchestrion`` command, run as a real process: what a new user does first."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from orchestrion import __version__
from tests.fixtures.processes import free_port, run_command, start_up, stop, wait_ready

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)


def test_up_serves_and_prints_a_generated_password_once(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = start_up(tmp_path, port)
    wait_ready(base, first)
    output = stop(first)
    assert first.returncode == 0, output
    assert base in output
    match = re.search(r"password: (\S+)", output)
    assert match, output

    second = start_up(tmp_path, port)
    try:
        wait_ready(base, second)
        login = httpx.post(
            f"{base}/api/v1/auth/login",
            json={"email": "admin@orchestrion.local", "password": match.group(1)},
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = httpx.post(
            f"{base}/api/v1/workflows",
            json={"name": "cli", "steps": [{"id": "a", "type": "transform", "with": {"v": 1}}]},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        assert httpx.get(f"{base}/health").json()["status"] == "ok"
    finally:
        second_output = stop(second)
    assert "password:" not in second_output


def test_users_create_then_login(tmp_path: Path) -> None:
    created = run_command(
        tmp_path, "users", "create", "--email", "ed@example.com", "--password", "editor-pass-1",
        "--role", "editor",
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    assert "ed@example.com" in created.stdout
    duplicate = run_command(
        tmp_path, "users", "create", "--email", "ed@example.com", "--password", "editor-pass-1",
    )  # fmt: skip
    assert duplicate.returncode == 1
    port = free_port()
    server = start_up(tmp_path, port)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        login = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/login",
            json={"email": "ed@example.com", "password": "editor-pass-1"},
        )
        assert login.status_code == 200, login.text
        me = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/auth/me",
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )
        assert me.json()["roles"] == ["editor"]
    finally:
        stop(server)


def test_db_upgrade_and_version(tmp_path: Path) -> None:
    upgraded = run_command(tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "data" / "orchestrion.db").exists()
    version = run_command(tmp_path, "version")
    assert version.stdout.strip() == __version__


def test_production_refuses_the_development_secret(tmp_path: Path) -> None:
    result = run_command(tmp_path, "db", "upgrade", ORCHESTRION_ENVIRONMENT="production")
    assert result.returncode == 2
    assert "ORCHESTRION_SECRET_KEY" in result.stderr


def test_serve_and_worker_refuse_a_database_not_migrated_to_their_schema(tmp_path: Path) -> None:
    never = run_command(tmp_path, "serve", "auth", "--port", str(free_port()))
    assert never.returncode == 2
    assert "was never migrated" in never.stderr
    assert "orchestrion db upgrade" in never.stderr
    assert "Traceback" not in never.stdout + never.stderr

    assert run_command(tmp_path, "db", "upgrade", "0010").returncode == 0
    behind = run_command(tmp_path, "worker")
    assert behind.returncode == 2
    assert "is at revision 0010" in behind.stderr
    assert "orchestrion db upgrade" in behind.stderr


def test_a_revision_newer_than_the_package_is_not_behind() -> None:
    from orchestrion.migrations import head_revision, is_behind

    assert is_behind("0010")
    assert not is_behind(head_revision())
    # A rolling upgrade migrates first; the instances still on the older version go on.
    assert not is_behind("9999_from_a_newer_release")
