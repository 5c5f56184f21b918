"""``orchestrion cluster up``: the distributed shape on one machine, from one command.

It migrates the database, then starts every service (``orchestrion serve``), the
workers (``orchestrion worker``) and the gateway (``orchestrion gateway``) as separate
processes with the settings of this environment (database, Redis, bus URLs), each on
its own port. A process that exits is started again (with a growing pause, so that a
broken one does not spin); Ctrl-C or SIGTERM stops them all, gateway first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from rich.console import Console

SERVICES = (
    "auth",
    "workflows",
    "realtime",
    "knowledge",
    "content",
    "templates",
    "notifications",
    "analytics",
    "flags",
)
_COMMAND = [sys.executable, "-m", "orchestrion"]


@dataclass
class Child:
    """One supervised process."""

    name: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start: float = 0.0
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        """Start (or start again) the process, its output going to ours."""
        self.process = subprocess.Popen([*_COMMAND, *self.args], env=self.env)  # noqa: S603
        self.started_at = time.monotonic()


def plan(
    *,
    host: str,
    port: int,
    instances: dict[str, int],
    workers: int,
    env: dict[str, str],
    scheme: str = "http",
) -> list[Child]:
    """The processes of a cluster: services on ``port+1...``, the gateway on ``port``
    (workflows instances serve gRPC on ``ORCHESTRION_GRPC__PORT``, ``+1``...). Services
    are addressed as ``scheme://``: ``https`` under mutual TLS (``ORCHESTRION_TLS__*``,
    which every process inherits)."""
    next_port = port + 1
    urls: dict[str, list[str]] = {}
    children: list[Child] = []
    for service in SERVICES:
        for index in range(instances.get(service, 1)):
            url = f"{scheme}://{host}:{next_port}"
            urls.setdefault(service, []).append(url)
            children.append(
                Child(
                    f"{service}-{index + 1}",
                    ["serve", service, "--host", host, "--port", str(next_port)],
                )
            )
            next_port += 1
    peers = {service: found[0] for service, found in urls.items()}
    shared = {**env, "ORCHESTRION_PEERS": json.dumps(peers)}
    shared.setdefault("ORCHESTRION_ENGINE__EMBEDDED_WORKERS", "false")
    children += [Child(f"worker-{n + 1}", ["worker"]) for n in range(workers)]
    upstreams = [f"--upstream={s}={','.join(u)}" for s, u in urls.items()]
    children.append(Child("gateway", ["gateway", "--host", host, "--port", str(port), *upstreams]))
    for child in children:
        child.env = shared
    # Each workflows instance serves gRPC: on ORCHESTRION_GRPC__PORT, the next, and so on.
    grpc_port = int(shared.get("ORCHESTRION_GRPC__PORT") or 50051)
    serving = [child for child in children if child.name.startswith("workflows-")]
    for index, child in enumerate(serving):
        port_of_child = grpc_port + index if grpc_port else 0
        child.env = {**shared, "ORCHESTRION_GRPC__PORT": str(port_of_child)}
    return children


def run(children: list[Child], console: Console) -> int:
    """Supervise ``children`` until a signal; returns the exit status."""
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    for child in children:
        child.start()
    try:
        while not stopping:
            time.sleep(0.2)
            now = time.monotonic()
            for child in children:
                if child.process is None or child.process.poll() is None:
                    continue
                if child.next_start == 0.0:
                    # Quick deaths back off (up to 30 s); a long healthy run resets the pause.
                    lived = now - child.started_at
                    child.restarts = 0 if lived > 60 else child.restarts + 1
                    pause = min(30.0, 0.5 * 2**child.restarts)
                    child.next_start = now + pause
                    console.print(
                        f"[yellow]{child.name} exited ({child.process.returncode}); "
                        f"starting it again in {pause:.1f} s[/yellow]"
                    )
                elif now >= child.next_start:
                    child.next_start = 0.0
                    child.start()
    finally:
        _stop_all(children)
    return 0


def _stop_all(children: list[Child]) -> None:
    for child in reversed(children):  # the gateway first: no new requests
        if child.process is not None and child.process.poll() is None:
            child.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 15
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


def environment() -> dict[str, str]:
    """This process's environment, passed on to every child."""
    return dict(os.environ)
