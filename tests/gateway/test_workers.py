"""``orchestrion gateway --workers 2`` as real processes: connections reach both workers,
the rate limit is one limit over them (Redis), a killed worker is started again, and
SIGTERM to the parent ends every worker.

Which worker holds a connection is read from ``/proc``: the server side of each
connection is a socket (an inode in ``/proc/net/tcp``) in one worker's ``/proc/<pid>/fd``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from http.client import HTTPConnection
from itertools import zip_longest
from pathlib import Path

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fixtures.databases import server_missing
from tests.fixtures.processes import Spawned, free_port, run_command, spawn, wait_ready
from tests.fixtures.servers import serve_in_thread

pytestmark = pytest.mark.timeout(300)

REDIS_URL = "redis://127.0.0.1:6379/0"
CONFIG = """
upstreams:
  echo:
    instances: ["{upstream}"]
routes:
  - prefix: /echo
    service: echo
    public: true
"""


def _echo() -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"path": request.url.path})

    return Starlette(routes=[Route("/{path:path}", echo)])


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_in_thread(_echo()) as base:
        yield base


def _redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except (OSError, redis.RedisError) as exc:
        server_missing("Redis at 127.0.0.1:6379", exc)


def _settings(rate_limit: str) -> dict[str, str]:
    prefix = f"orn:test:{uuid.uuid4().hex[:8]}:"
    return {
        "ORCHESTRION_REDIS__URL": REDIS_URL,
        "ORCHESTRION_GATEWAY__RATE_LIMIT": rate_limit,
        "ORCHESTRION_GATEWAY__RATE_LIMIT_PREFIX": prefix + "rl:",
        "ORCHESTRION_GATEWAY__REGISTRY_PREFIX": prefix + "registry:",
        "ORCHESTRION_OBSERVABILITY__ACCESS_LOG": "false",
        "ORCHESTRION_SHUTDOWN_GRACE_SECONDS": "5",
        # A loaded machine must not turn into a fail-open request or an idle connection
        # closed before the test uses it.
        "ORCHESTRION_GATEWAY__POLICY_TIMEOUT_SECONDS": "10",
        "ORCHESTRION_GATEWAY__HEADER_TIMEOUT_SECONDS": "120",
    }


@contextlib.contextmanager
def _gateway(home: Path, upstream: str, rate_limit: str) -> Iterator[tuple[Spawned, int]]:
    """``orchestrion gateway --workers 2``, both workers ready; yields it and its port."""
    _redis_or_skip()
    config = home / "gateway.yaml"
    config.write_text(CONFIG.format(upstream=upstream))
    port = free_port()
    process = spawn(
        home, "gateway", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
        f"--config={config}", **_settings(rate_limit),
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, 120)
        _wait_for_log(process, r"worker \d ready", count=2)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()  # the test failed before its own stop
            process.wait(timeout=30)
        for pid in _children(process.pid):
            os.kill(pid, signal.SIGKILL)


def _wait_for_log(process: Spawned, pattern: str, *, count: int, seconds: float = 120) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        log = process.log.read_text(errors="replace")
        if len(re.findall(pattern, log)) >= count:
            return log
        if process.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"{count} x {pattern!r} not logged: {process.log.read_text(errors='replace')}")


def _children(parent: int) -> list[int]:
    """Processes whose parent is ``parent`` (from /proc/<pid>/stat)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _owners(port: int, workers: list[int]) -> dict[int, int]:
    """Client port -> worker pid, for the connections established to ``port``."""
    inodes: dict[str, int] = {}
    for pid in workers:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes[target[8:-1]] = pid
    owners = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                columns = line.split()
                local, remote, state, inode = columns[1], columns[2], columns[3], columns[9]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port and inode in inodes:
                    owners[int(remote.rsplit(":", 1)[1], 16)] = inodes[inode]
    return owners


def _get(connection: HTTPConnection, path: str) -> int:
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return response.status


def test_connections_reach_both_workers_and_the_rate_limit_is_theirs_together(
    tmp_path: Path, upstream: str
) -> None:
    with _gateway(tmp_path, upstream, "20/minute") as (process, port):
        workers = _children(process.pid)
        assert len(workers) == 2, workers
        connections = [HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(24)]
        for connection in connections:
            connection.connect()
        mine = {c.sock.getsockname()[1]: c for c in connections}
        deadline = time.monotonic() + 30
        owners = _owners(port, workers)
        while set(mine) - set(owners) and time.monotonic() < deadline:
            time.sleep(0.1)  # a worker accepts a connection when its loop gets to it
            owners = _owners(port, workers)
        assert set(mine) <= set(owners), "some connections were never accepted"
        by_worker = {pid: [mine[p] for p in mine if owners[p] == pid] for pid in workers}
        assert all(by_worker.values()), f"one worker got every connection: {owners}"

        # 20 requests alternating between the workers, each on its own connection: one
        # limit of 20 for the caller, so the 21st is refused whichever worker takes it.
        a, b = by_worker[workers[0]], by_worker[workers[1]]
        assert len(a) >= 2, owners
        assert len(b) >= 2, owners
        over = [a.pop(), b.pop()]
        order = [c for pair in zip_longest(a, b) for c in pair if c is not None][:20]
        statuses = [_get(connection, f"/echo/{n}") for n, connection in enumerate(order)]
        assert statuses == [200] * 20
        assert [_get(connection, "/echo/over") for connection in over] == [429, 429]
        for connection in connections:
            connection.close()


def test_a_killed_worker_is_started_again_and_sigterm_ends_every_worker(
    tmp_path: Path, upstream: str
) -> None:
    with _gateway(tmp_path, upstream, "") as (process, port):
        first = _children(process.pid)
        assert len(first) == 2, first
        os.kill(first[0], signal.SIGKILL)
        _wait_for_log(
            process, rf"\(pid {first[0]}\) exited with signal SIGKILL; restarting", count=1
        )
        _wait_for_log(process, r"worker \d ready", count=3)
        workers = _children(process.pid)
        assert len(workers) == 2, workers
        assert first[0] not in workers
        assert first[1] in workers
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for n in range(10):
                # A fresh connection each: the kernel may pick either listening socket.
                answer = http.get(f"/echo/{n}", headers={"Connection": "close"})
                assert answer.status_code == 200, answer.text
                assert answer.json() == {"path": f"/echo/{n}"}

        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the gateway did not stop on SIGTERM: {process.communicate()[0]}")
        assert process.returncode == 0, process.communicate()[0]
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived its supervisor"
        assert "stopped" in process.communicate()[0]


def test_several_workers_without_redis_are_refused(tmp_path: Path) -> None:
    done = run_command(
        tmp_path, "gateway", "--port", str(free_port()), "--workers", "2",
        "--upstream=auth=http://127.0.0.1:9",
    )  # fmt: skip
    assert done.returncode == 2
    assert "needs ORCHESTRION_REDIS__URL" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_a_port_in_use_stops_the_workers_before_they_start(tmp_path: Path) -> None:
    _redis_or_skip()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_command(
            tmp_path, "gateway", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
            "--upstream=auth=http://127.0.0.1:9", ORCHESTRION_REDIS__URL=REDIS_URL,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
