"""Load and process helpers for the HTTP benchmarks: wrk runs, paced wrk runs, servers.

``wrk`` (Debian package) is the load generator; its ``--latency`` output is parsed into
a :class:`Sample`. ``paced`` approximates a constant request rate (wrk2 is not packaged)
with wrk's Lua ``delay()`` hook. :class:`Processes` starts servers and ends them by PID.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parent.parent
# This checkout's code, not whichever one the environment was installed from.
PYTHONPATH = os.pathsep.join((str(ROOT / "src"), str(ROOT)))


@dataclass
class Sample:
    """One wrk run."""

    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    requests: int = 0
    cpu_us_per_request: float = 0.0


def ensure_tools() -> None:
    """wrk and nginx on PATH, installed from the Debian packages when root, else exit."""
    packages = {"wrk": "wrk", "nginx": "nginx-light"}
    wanted = [package for tool, package in packages.items() if not which(tool)]
    if not wanted:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"bench.gateway needs {', '.join(wanted)}: apt-get install -y {' '.join(wanted)}")
    print(f"installing {' '.join(wanted)} with apt-get", file=sys.stderr)
    install = ["apt-get", "install", "-y", "--no-install-recommends", *wanted]
    if subprocess.run(install, stdout=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], stdout=subprocess.DEVNULL, check=False)
        subprocess.run(install, stdout=subprocess.DEVNULL, check=True)
    if not all(which(tool) for tool in packages):
        sys.exit("bench.gateway: wrk or nginx still missing after apt-get install")


def which(tool: str) -> str | None:
    """``tool`` on PATH or in the system directories (nginx is in /usr/sbin)."""
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Processes:
    """Processes this run started, each ended by its PID on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.logs: list[IO[bytes]] = []

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self.logs.append(log)
        process = subprocess.Popen(
            command, cwd=self.workdir, env={**os.environ, "PYTHONPATH": PYTHONPATH, **(env or {})},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.started.append((name, process))

    def log_tail(self, name: str, lines: int = 5) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
        return " | ".join(text[-lines:])[-800:]

    def exited(self, name: str) -> bool:
        return any(n == name and p.poll() is not None for n, p in self.started)

    def cpu_seconds(self, name: str) -> float:
        """User + system CPU time the process ``name`` and its children (nginx's or the
        gateway's workers) have used so far (Linux /proc)."""
        pid = next(p.pid for n, p in self.started if n == name)
        ticks = 0
        for process, parent, used in _stats():
            if pid in (process, parent):
                ticks += used
        return ticks / os.sysconf("SC_CLK_TCK")

    def wait_logged(self, name: str, text: str, count: int, timeout: float = 120.0) -> None:
        """Wait until ``name``'s log holds ``text`` ``count`` times; raise if it exited."""
        path = self.workdir / f"{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.read_text(errors="replace").count(text) >= count:
                return
            if self.exited(name):
                break
            time.sleep(0.2)
        raise RuntimeError(f"{name}: {count} x {text!r} not logged: {self.log_tail(name)}")

    def stop(self) -> None:
        for _, process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
        for _, process in reversed(self.started):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for log in self.logs:
            log.close()


def _stats() -> list[tuple[int, int, int]]:
    """(pid, parent pid, user + system ticks) of every process (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        found.append((int(entry.name), int(fields[1]), int(fields[11]) + int(fields[12])))
    return found


def wait_ready(url: str, processes: Processes, name: str, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers at all (any status); raise if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if processes.exited(name):
            raise RuntimeError(f"{name} exited: {processes.log_tail(name)}")
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not start in {timeout:.0f}s: {processes.log_tail(name)}")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> Sample:
    """RPS, p50, p99, non-2xx/3xx responses and socket errors from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s*50(?:\.000)?%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s*99(?:\.000)?%\s+(\S+)", output, re.M)
    if not (rps and p50 and p99):
        raise RuntimeError(f"unexpected wrk output: {output[-300:]!r}")
    requests = re.search(r"(\d+) requests in", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return Sample(
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        requests=int(requests.group(1)) if requests else 0,
    )


def wrk(
    url: str,
    headers: dict[str, str],
    *,
    connections: int,
    duration: float,
    script: Path | None = None,
) -> Sample:
    """One ``wrk -t1 --latency`` run against ``url``."""
    command = [which("wrk") or "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    done = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=duration + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout[-300:]}")
    return parse_wrk(done.stdout)


@dataclass
class Paced:
    """A row loaded at a fixed request rate."""

    target: float
    connections: int
    samples: list[Sample]

    def p99(self) -> float:
        return statistics.median(s.p99_ms for s in self.samples)

    def rps(self) -> float:
        return statistics.median(s.rps for s in self.samples)


def paced(
    url: str,
    headers: dict[str, str],
    target: float,
    script: Path,
    *,
    duration: float,
    rounds: int,
) -> Paced:
    """``row`` at ``target`` requests/s: each connection waits ``delay()`` ms between requests.

    wrk's Lua ``delay()`` is whole milliseconds, so there are enough connections for a
    ~10 ms cycle each; one 2 s calibration run corrects the delay for the response time.
    """
    connections = max(4, min(256, round(target * 0.010)))
    interval_ms = connections * 1000 / target

    def run(delay: int, seconds: float) -> Sample:
        script.write_text(f"function delay()\n  return {delay}\nend\n")
        return wrk(url, headers, connections=connections, duration=seconds, script=script)

    first = max(0, round(interval_ms - 1))
    probe = run(first, 2)
    overhead = connections * 1000 / probe.rps - first
    delay = max(0, round(interval_ms - overhead))
    return Paced(target, connections, [run(delay, duration) for _ in range(rounds)])
