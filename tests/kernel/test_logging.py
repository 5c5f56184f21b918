"""Log format: JSON lines to a pipe, a readable console on a terminal, as set.

Real processes: ``orchestrion gateway`` (its own lines, uvicorn's and the access log)
with stderr to a pipe or to a pseudo-terminal, as the commands read the setting; for
the other combinations a small program that calls the same configure function.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from orchestrion.settings import Settings
from tests.fixtures.processes import ORCHESTRION, environment, free_port, wait_ready

# Real processes start and stop slowly on a loaded machine (tests run in parallel).
pytestmark = pytest.mark.timeout(300)

CONSOLE_LINE = re.compile(
    r"^\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+ +\S.*$"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Logging set up in the format given as argument; Alembic chatter (quiet at INFO), a
# uvicorn line, extras, an error.
PROGRAM = """
import logging, sys
from orchestrion.kernel.observability.logging import configure_logging

configure_logging(format=sys.argv[1])
logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.types")
logging.getLogger("uvicorn.error").info(
    "Uvicorn running on %s", "http://127.0.0.1:1", extra={"color_message": "ansi copy"}
)
logging.getLogger("orchestrion.gateway").warning(
    "instance down", extra={"service": "auth", "reason": "connection refused"}
)
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("orchestrion.engine").exception("step failed")
"""


class _Terminal:
    """A pseudo-terminal for a child's stderr; what the child wrote to it, collected."""

    def __init__(self) -> None:
        self.main, self.child = pty.openpty()
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.main, 65536)
            except OSError:  # EIO: the child side closed
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def text(self) -> str:
        """Everything written, once the child has exited (terminal line ends undone)."""
        self._reader.join(timeout=10)
        os.close(self.main)
        return b"".join(self._chunks).decode().replace("\r\n", "\n")


def _env(home: Path, **env: str) -> dict[str, str]:
    """A colour terminal's environment (no NO_COLOR from ours), no ORCHESTRION_* but ``env``."""
    environ = environment(home, TERM="xterm-256color", **env)
    if "NO_COLOR" not in env:
        environ.pop("NO_COLOR", None)
    return environ


def _gateway(home: Path, stderr: int, **env: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    process = subprocess.Popen(
        [*ORCHESTRION, "gateway", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(home, **env), cwd=home, text=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
    )  # fmt: skip
    # Requests to /health/live until it answers: access log lines too.
    wait_ready(f"http://127.0.0.1:{port}", process)
    return process, port


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("the gateway did not stop on SIGINT")
    return err or ""


def _program(home: Path, log_format: str, *, terminal: bool, **env: str) -> str:
    """Run :data:`PROGRAM`; its stderr."""
    if not terminal:
        done = subprocess.run(
            [sys.executable, "-c", PROGRAM, log_format], env=_env(home, **env), cwd=home,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stderr
    screen = _Terminal()
    child = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, log_format], env=_env(home, **env), cwd=home,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=screen.child,
    )  # fmt: skip
    os.close(screen.child)
    assert child.wait(timeout=60) == 0
    return screen.text()


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_gateway_logs_to_a_pipe_are_json_lines(tmp_path: Path) -> None:
    process, _ = _gateway(tmp_path, subprocess.PIPE)
    records = [json.loads(line) for line in _lines(_stop(process))]  # every line is JSON
    assert all({"timestamp", "level", "logger", "event"} <= r.keys() for r in records)
    uvicorn = {r["event"]: r for r in records if r["logger"] == "uvicorn.error"}
    assert uvicorn["Application startup complete."]["level"] == "info"
    assert "Application shutdown complete." in uvicorn
    access = [r for r in records if r["logger"] == "orchestrion.access"]
    assert access
    assert access[0]["event"].startswith("GET /health/live 200")
    assert access[0]["request_id"]


def test_gateway_logs_to_a_pipe_as_console_when_asked(tmp_path: Path) -> None:
    process, _ = _gateway(
        tmp_path, subprocess.PIPE, ORCHESTRION_OBSERVABILITY__LOG_FORMAT="console"
    )
    text = _stop(process)
    assert "\x1b[" not in text  # colours belong on a terminal only
    lines = _lines(text)
    assert not [line for line in lines if line.startswith("{")]
    assert all(CONSOLE_LINE.match(line) for line in lines), text
    assert any(
        re.match(r".{12} INFO +uvicorn\.error +Application startup complete\.$", line)
        for line in lines
    ), text
    assert any(
        re.match(r".{12} INFO +orchestrion\.access +GET /health/live 200 \S+ request_id=\S+$", line)
        for line in lines
    ), text


def test_gateway_on_a_terminal_logs_for_people_in_colour(tmp_path: Path) -> None:
    screen = _Terminal()
    process, _ = _gateway(tmp_path, screen.child)
    os.close(screen.child)
    _stop(process)
    text = screen.text()
    assert "\x1b[32mINFO" in text  # the level, in colour
    plain = ANSI.sub("", text)
    lines = _lines(plain)
    assert not [line for line in lines if line.startswith("{")]
    assert all(CONSOLE_LINE.match(line) for line in lines), plain
    assert any(line.endswith("Application startup complete.") for line in lines), plain


def test_json_on_a_terminal_when_asked(tmp_path: Path) -> None:
    text = _program(tmp_path, "json", terminal=True)
    records = [json.loads(line) for line in _lines(text)]
    assert [r["event"] for r in records] == [
        "Uvicorn running on http://127.0.0.1:1",
        "instance down",
        "step failed",
    ]
    assert "color_message" not in records[0]
    assert records[1]["service"] == "auth"
    assert records[1]["reason"] == "connection refused"
    assert records[2]["level"] == "error"
    assert "ZeroDivisionError: division by zero" in records[2]["exception"]


def test_console_extras_and_traceback(tmp_path: Path) -> None:
    text = _program(tmp_path, "console", terminal=False)
    lines = text.splitlines()
    assert re.match(r".{12} INFO +uvicorn\.error +Uvicorn running on http://127.0.0.1:1$", lines[0])
    assert re.match(
        r".{12} WARNING +orchestrion\.gateway +instance down "
        r"reason='connection refused' service=auth$",
        lines[1],
    ), lines[1]
    assert re.match(r".{12} ERROR +orchestrion\.engine +step failed$", lines[2])
    assert lines[3] == "Traceback (most recent call last):"
    assert lines[-1] == "ZeroDivisionError: division by zero"


def test_no_colour_on_a_terminal_with_no_color(tmp_path: Path) -> None:
    text = _program(tmp_path, "auto", terminal=True, NO_COLOR="1")
    assert "\x1b[" not in text
    assert CONSOLE_LINE.match(text.splitlines()[0])


def test_log_format_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRION_OBSERVABILITY__LOG_FORMAT", "console")
    assert Settings(_env_file=None).observability.log_format == "console"  # type: ignore[call-arg]
    monkeypatch.delenv("ORCHESTRION_OBSERVABILITY__LOG_FORMAT")
    monkeypatch.setenv("ORCHESTRION_OBSERVABILITY__LOG_JSON", "false")  # the older setting
    assert Settings(_env_file=None).observability.log_format == "console"  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "auto"),
        ({"log_format": "console"}, "console"),
        ({"log_json": "false"}, "console"),
        ({"log_json": True}, "json"),
        ({"log_json": "false", "log_format": "json"}, "json"),  # the new setting wins
    ],
)
def test_log_format_setting(values: dict[str, object], expected: str) -> None:
    settings = Settings(_env_file=None, observability=values)  # type: ignore[call-arg,arg-type]
    assert settings.observability.log_format == expected


def test_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log_format"):
        Settings(_env_file=None, observability={"log_format": "yaml"})  # type: ignore[call-arg,arg-type]
