"""The zygote the suite forks ``orchestrion`` processes from (``tests/fixtures/zygote.py``)
gives what ``exec`` gave: the process's own arguments, environment, working directory,
output, exit status and signals."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.fixtures import zygote
from tests.fixtures.processes import free_port, run_command, spawn, wait_ready


def test_a_command_gets_its_own_output_and_exit_status(tmp_path: Path) -> None:
    done = run_command(tmp_path, "version")
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "0.1.0", "")
    refused = run_command(tmp_path, "no-such-command")
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert "No such command" in refused.stderr


def test_a_command_runs_in_its_directory_with_its_environment(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # A relative SQLite path is resolved against the working directory.
    relative = "sqlite+aiosqlite:///relative.db"
    done = run_command(home, "db", "upgrade", ORCHESTRION_DATABASE__URL=relative)
    assert done.returncode == 0, done.stderr
    assert (home / "relative.db").is_file()
    assert not (tmp_path / "relative.db").exists()
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError):
        run_command(missing, "version")  # as Popen refuses a missing cwd


def test_a_server_is_its_own_process_signalled_by_pid(tmp_path: Path) -> None:
    port = free_port()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = spawn(tmp_path / "a", "up", "--host", "127.0.0.1", "--port", str(port))
    wait_ready(f"http://127.0.0.1:{port}", first)
    parent = int(Path(f"/proc/{first.pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    # Forked by the zygote (ORCHESTRION_TEST_FORK=0: this process's own child).
    assert parent == (zygote.zygote().process.pid if zygote.enabled() else os.getpid())
    assert first.poll() is None
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=20) == -signal.SIGKILL
    # A graceful stop answers its own exit status, and the output is the process's.
    second = spawn(tmp_path / "b", "up", "--host", "127.0.0.1", "--port", str(port))
    wait_ready(f"http://127.0.0.1:{port}", second)
    second.send_signal(signal.SIGINT)
    started = time.monotonic()
    output, _ = second.communicate(timeout=60)
    assert second.returncode == 0, output
    assert time.monotonic() - started < 60
    assert f"127.0.0.1:{port}" in output
