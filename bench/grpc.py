"""gRPC event stream against SSE, side by side on the same platform and workflow.

    .venv/bin/python -m bench.grpc [--steps 100] [--executions 20] [--concurrency 4]

``orchestrion up`` runs in a subprocess (SQLite, embedded workers, gRPC on a free port).
One workflow, a chain of ``--steps`` no-op ``transform`` steps (about 3 events a step),
is run ``--executions`` times per path, the paths alternating, ``--concurrency`` runs at
a time:

- gRPC: ``ExecuteWorkflow`` (start, then the stream to the terminal event), straight to
  the workflows service's gRPC port (the generated stub; protobuf messages);
- SSE: ``POST /api/v1/workflows/{id}/executions`` then ``GET /api/v1/executions/{id}/stream``
  through the gateway until the terminal event (what a browser does; JSON frames).

Both read the same source, the execution's log. Reported per path: time to the last
event from the start request (p50, p95) and events/s over the whole path; then the
ratio gRPC / SSE. Every run must end with ``execution.succeeded`` and both paths must
deliver the same number of events per execution, else the bench fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import httpx

from orchestrion.services.workflows.grpc.v1 import workflows_pb2 as pb
from orchestrion.services.workflows.grpc.v1 import workflows_pb2_grpc as pb_grpc

PASSWORD = "bench-password-0123"
TERMINAL = {"execution.succeeded", "execution.failed", "execution.cancelled"}
Run = Callable[[], Awaitable[tuple[float, int]]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_platform(http_port: int, grpc_port: int) -> subprocess.Popen[bytes]:
    """``orchestrion up`` on fresh data, quiet."""
    data = tempfile.mkdtemp(prefix="orchestrion-bench-grpc-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRION_")}
    env.update(
        ORCHESTRION_DATA_DIR=data,
        ORCHESTRION_SECRET_KEY="bench-grpc-secret-0123456789abcdef",
        ORCHESTRION_ADMIN_PASSWORD=PASSWORD,
        ORCHESTRION_GRPC__PORT=str(grpc_port),
        ORCHESTRION_GATEWAY__RATE_LIMIT="",
        ORCHESTRION_OBSERVABILITY__LOG_LEVEL="WARNING",
        ORCHESTRION_OBSERVABILITY__ACCESS_LOG="false",
    )
    command = [sys.executable, "-m", "orchestrion", "up", "--port", str(http_port)]
    return subprocess.Popen(command, env=env, cwd=data, stdout=subprocess.DEVNULL)


async def wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    """Until the gateway answers (fails if the platform exits)."""
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit("orchestrion up exited")
            try:
                if (await http.get(f"{base}/health/live")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("orchestrion up did not answer within 120 s")


def grpc_run(stub: pb_grpc.WorkflowServiceStub, token: str, workflow_id: str) -> Run:
    """One gRPC execution: (seconds to the last event, events)."""
    metadata = (("authorization", f"Bearer {token}"),)

    async def run() -> tuple[float, int]:
        started = time.perf_counter()
        count, last = 0, ""
        request = pb.ExecuteRequest(workflow_id=workflow_id)
        async for event in stub.ExecuteWorkflow(request, metadata=metadata, timeout=120):
            count, last = count + 1, event.type
        if last != "execution.succeeded":
            raise SystemExit(f"gRPC run ended with {last!r}")
        return time.perf_counter() - started, count

    return run


def sse_run(http: httpx.AsyncClient, token: str, workflow_id: str) -> Run:
    """One SSE execution: (seconds to the last event, events)."""
    headers = {"Authorization": f"Bearer {token}"}

    async def run() -> tuple[float, int]:
        started = time.perf_counter()
        created = await http.post(
            f"/api/v1/workflows/{workflow_id}/executions", json={}, headers=headers
        )
        created.raise_for_status()
        url = f"/api/v1/executions/{created.json()['id']}/stream"
        count, last = 0, ""
        async with http.stream("GET", url, headers=headers, timeout=120) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("event: ") and line[7:] != "token":
                    count, last = count + 1, line[7:]
                    if last in TERMINAL:
                        break
        if last != "execution.succeeded":
            raise SystemExit(f"SSE run ended with {last!r}")
        return time.perf_counter() - started, count

    return run


async def measure(run: Run, executions: int, concurrency: int) -> dict[str, float]:
    """``executions`` runs, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)
    results: list[tuple[float, int]] = []

    async def one() -> None:
        async with gate:
            results.append(await run())

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(executions)))
    wall = time.perf_counter() - started
    seconds = sorted(r[0] for r in results)
    events = [r[1] for r in results]
    return {
        "p50_ms": statistics.median(seconds) * 1000,
        "p95_ms": seconds[max(0, round(0.95 * len(seconds)) - 1)] * 1000,
        "events_per_s": sum(events) / wall,
        "events": float(statistics.median(events)),
    }


async def bench(steps: int, executions: int, concurrency: int, rounds: int) -> None:
    http_port, grpc_port = _free_port(), _free_port()
    base = f"http://127.0.0.1:{http_port}"
    process = start_platform(http_port, grpc_port)
    try:
        await wait_ready(base, process)
        async with (
            httpx.AsyncClient(base_url=base, timeout=60) as http,
            grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
        ):
            login = await http.post(
                "/api/v1/auth/login",
                json={"email": "admin@orchestrion.local", "password": PASSWORD},
            )
            login.raise_for_status()
            token = login.json()["access_token"]
            chain = [
                {"id": f"s{i}", "type": "transform", "with": {"i": i}}
                | ({"needs": [f"s{i - 1}"]} if i else {})
                for i in range(steps)
            ]
            created = await http.post(
                "/api/v1/workflows",
                json={"name": "bench-grpc", "steps": chain},
                headers={"Authorization": f"Bearer {token}"},
            )
            created.raise_for_status()
            workflow_id = created.json()["id"]
            paths = {
                "gRPC ExecuteWorkflow": grpc_run(
                    pb_grpc.WorkflowServiceStub(channel), token, workflow_id
                ),
                "SSE start + stream": sse_run(http, token, workflow_id),
            }
            for run in paths.values():  # warm both paths up
                await run()
            figures: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
            for _ in range(rounds):
                for name, run in paths.items():
                    figures[name].append(await measure(run, executions, concurrency))
    finally:
        process.terminate()
        process.wait(timeout=30)
    report(figures, steps=steps, executions=executions, concurrency=concurrency)


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def report(
    figures: dict[str, list[dict[str, float]]], *, steps: int, executions: int, concurrency: int
) -> None:
    """The table, medians over rounds, and the ratio."""
    counts = {_median(rows, "events") for rows in figures.values()}
    if len(counts) != 1:
        raise SystemExit(f"the paths delivered different event counts: {counts}")
    print(
        f"{steps}-step chain ({counts.pop():.0f} events), {executions} executions per path "
        f"and round, {concurrency} at a time"
    )
    header = f"{'path':<24} {'last event p50':>15} {'p95':>9} {'events/s':>10}"
    print(header)
    print("-" * len(header))
    for name, rows in figures.items():
        print(
            f"{name:<24} {_median(rows, 'p50_ms'):>12.1f} ms {_median(rows, 'p95_ms'):>6.1f} ms"
            f" {_median(rows, 'events_per_s'):>10.0f}"
        )
    grpc_rows, sse_rows = figures.values()
    latency = _median(grpc_rows, "p50_ms") / _median(sse_rows, "p50_ms")
    rate = _median(grpc_rows, "events_per_s") / _median(sse_rows, "events_per_s")
    print(f"gRPC / SSE: time to last event x{latency:.2f}, events/s x{rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="Steps of the chain.")
    parser.add_argument("--executions", type=int, default=20, help="Runs per path and round.")
    parser.add_argument("--concurrency", type=int, default=4, help="Runs at a time.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds (medians reported).")
    args = parser.parse_args()
    print(f"$ {Path(sys.executable).name} -m bench.grpc {' '.join(sys.argv[1:])}".rstrip())
    asyncio.run(bench(args.steps, args.executions, args.concurrency, args.rounds))


if __name__ == "__main__":
    main()
