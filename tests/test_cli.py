"""The ``orchestrion`` command, run as a real process: what a new user does first."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from orchestrion import __version__

ORCHESTRION = [sys.executable, "-m", "orchestrion"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRION_")}
    env.update(ORCHESTRION_DATA_DIR=str(home / "data"), **extra)
    return env


def _run(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ORCHESTRION, *args], env=_env(home, **extra), cwd=home,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _start(home: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*ORCHESTRION, "up", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(home), cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _wait_ready(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"orchestrion up exited: {process.communicate()[0]}")
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    pytest.fail("orchestrion up did not answer within 60 s")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"orchestrion up did not stop on SIGINT: {output}")
    return output


def test_up_serves_and_prints_a_generated_password_once(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    first = _start(tmp_path, port)
    _wait_ready(base, first)
    output = _stop(first)
    assert first.returncode == 0, output
    assert base in output
    match = re.search(r"password: (\S+)", output)
    assert match, output

    second = _start(tmp_path, port)
    try:
        _wait_ready(base, second)
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
        second_output = _stop(second)
    assert "password:" not in second_output


def test_users_create_then_login(tmp_path: Path) -> None:
    created = _run(
        tmp_path, "users", "create", "--email", "ed@example.com", "--password", "editor-pass-1",
        "--role", "editor",
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    assert "ed@example.com" in created.stdout
    duplicate = _run(
        tmp_path, "users", "create", "--email", "ed@example.com", "--password", "editor-pass-1",
    )  # fmt: skip
    assert duplicate.returncode == 1
    port = _free_port()
    server = _start(tmp_path, port)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", server)
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
        _stop(server)


def test_db_upgrade_and_version(tmp_path: Path) -> None:
    upgraded = _run(tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "data" / "orchestrion.db").exists()
    version = _run(tmp_path, "version")
    assert version.stdout.strip() == __version__


def test_production_refuses_the_development_secret(tmp_path: Path) -> None:
    result = _run(tmp_path, "db", "upgrade", ORCHESTRION_ENVIRONMENT="production")
    assert result.returncode == 2
    assert "ORCHESTRION_SECRET_KEY" in result.stderr
