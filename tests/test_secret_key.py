"""The secret key: never the public development value where other hosts can reach the
platform; generated and kept per data directory for a local ``up``; rotated without
losing what the old one encrypted."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from orchestrion.settings import Settings
from tests.fixtures.processes import free_port, spawn, start_up, stop, wait_ready

OTHER_SECRET = "an-operator-chosen-secret-0123456789"


def _refused(home: Path, *args: str, **env: str) -> str:
    """Run a command expected to exit at once with status 2; its output.

    "At once" is before serving, but importing the platform takes a while on a loaded
    machine, so the deadline is generous.
    """
    process = spawn(home, *args, **env)
    try:
        output, _ = process.communicate(timeout=75)
    except subprocess.TimeoutExpired:
        output = stop(process)
        raise AssertionError(f"`orchestrion {' '.join(args)}` started serving:\n{output}") from None
    assert process.returncode == 2, output
    assert "Traceback" not in output
    return " ".join(output.split())


@pytest.mark.timeout(300)
def test_serving_other_hosts_with_the_development_secret_is_refused(tmp_path: Path) -> None:
    port = str(free_port())
    for args in (
        ("serve", "auth", "--host", "0.0.0.0", "--port", port),
        ("gateway", "--host", "0.0.0.0", "--port", port),
        ("up", "--host", "0.0.0.0", "--port", port),
    ):
        output = _refused(tmp_path, *args)
        assert "ORCHESTRION_SECRET_KEY" in output
        assert "0.0.0.0" in output
    assert not (tmp_path / "data" / "secret_key").exists()  # nothing generated off loopback


def test_up_on_loopback_generates_a_secret_once_and_reuses_it(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = start_up(tmp_path, port, ORCHESTRION_ADMIN_PASSWORD="first-root-pass-1")
    wait_ready(base, first)
    token = httpx.post(
        f"{base}/api/v1/auth/login",
        json={"email": "admin@orchestrion.local", "password": "first-root-pass-1"},
    ).json()["access_token"]
    output = " ".join(stop(first).split())
    path = tmp_path / "data" / "secret_key"
    assert "generated a secret key" in output
    assert str(path) in output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret) >= 32

    second = start_up(tmp_path, port)
    try:
        wait_ready(base, second)
        # The signing key written under the generated secret is read back, and a token
        # from the first run still verifies.
        me = httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
    finally:
        output = stop(second)
    assert "generated a secret key" not in output
    assert path.read_text().strip() == secret


def test_a_changed_secret_is_a_clear_error_until_the_previous_one_is_given(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = start_up(tmp_path, port)
    wait_ready(base, first)
    stop(first)
    generated = (tmp_path / "data" / "secret_key").read_text().strip()

    output = _refused(
        tmp_path, "up", "--host", "127.0.0.1", "--port", str(port),
        ORCHESTRION_SECRET_KEY=OTHER_SECRET,
    )  # fmt: skip
    assert "the secret key changed" in output
    assert "ORCHESTRION_SECRET_KEY_PREVIOUS" in output

    rotated = start_up(
        tmp_path, port, ORCHESTRION_SECRET_KEY=OTHER_SECRET,
        ORCHESTRION_SECRET_KEY_PREVIOUS=generated,
    )  # fmt: skip
    try:
        wait_ready(base, rotated)
    finally:
        stop(rotated)


def test_every_decryptor_reads_what_the_previous_secret_wrote(tmp_path: Path) -> None:
    from orchestrion.services.auth.crypto import fernet_for as signing_fernet
    from orchestrion.services.workflows.app import create_app
    from orchestrion.services.workflows.runtime import llm_fernet, mcp_fernet

    def settings(**values: object) -> Settings:
        return Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[call-arg]

    old = settings(secret_key=SecretStr("the-secret-before-rotation-0001"))
    new = settings(
        secret_key=SecretStr("the-secret-after-rotation-0002"),
        secret_key_previous=SecretStr("the-secret-before-rotation-0001"),
    )
    old_app, new_app = create_app(old), create_app(new)
    old_secret, new_secret = (s.secret_key.get_secret_value().encode() for s in (old, new))
    pairs = [
        (llm_fernet(old), llm_fernet(new)),
        (mcp_fernet(old), mcp_fernet(new)),
        (old_app.state.fernet, new_app.state.fernet),
        (old_app.state.llm_fernet, new_app.state.llm_fernet),
        (old_app.state.mcp_fernet, new_app.state.mcp_fernet),
        (signing_fernet(old_secret), signing_fernet(new_secret, previous=new.previous_secrets)),
    ]
    for before, after in pairs:
        assert after.decrypt(before.encrypt(b"sk-provider-key")) == b"sk-provider-key"
        # New data is written under the new secret alone.
        assert signing_fernet(new_secret).decrypt(signing_fernet(new_secret).encrypt(b"x"))
