"""Realtime benchmark: idle sockets one process holds, and fan-out latency.

Run: ``.venv/bin/python -m bench.realtime [--connections 10000] [--subscribers 1000]``.

The realtime service runs alone in a subprocess (uvicorn, uvloop, httptools, the
in-memory backend), exactly as ``create_app`` builds it. Clients run in other processes:

1. idle: open ``--connections`` authenticated sockets and report the server's RSS per
   socket (RSS after minus RSS before, over the count);
2. fan-out: ``--subscribers`` sockets on one channel (split across client processes),
   one publisher sending ``--messages`` messages stamped with the send time; each
   subscriber notes the arrival time; p50/p99 over every (message, subscriber) pair.

Goals: ≥ 10,000 idle connections, ≤ 50 ms p99 to 1,000 subscribers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from websockets.asyncio.client import connect

SECRET = "bench-secret-key-0123456789abcdef"
CHANNEL = "room:bench"
WARMUP = 10  # first messages of the fan-out, not counted


def _raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1_000_000
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def _headers(user: str) -> dict[str, str]:
    from orchestrion.kernel.auth.identity import IDENTITY_HEADER, encode_identity
    from orchestrion.kernel.auth.principal import Principal

    # Publishing needs workflows:write (subscribers could do without; one identity serves both).
    principal = Principal(
        subject=user, tenant_id="bench", permissions=frozenset({"workflows:write"})
    )
    return {IDENTITY_HEADER: encode_identity(principal, SECRET.encode())}


def serve(port: int) -> None:
    """The server process: the realtime service alone on ``port``."""
    import uvicorn
    from pydantic import SecretStr

    from orchestrion.services.realtime.app import create_app
    from orchestrion.services.realtime.config import RealtimeSettings
    from orchestrion.settings import Settings

    _raise_fd_limit()
    data = tempfile.mkdtemp(prefix="orn-bench-")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="test",
        secret_key=SecretStr(SECRET),
        data_dir=data,
        database={"url": f"sqlite+aiosqlite:///{data}/bench.db"},
    )
    config = RealtimeSettings(
        max_connections=100_000,
        max_connections_per_user=100_000,
        heartbeat_timeout_seconds=3600,
        send_queue_size=1000,
        # The bench measures fan-out throughput, not the per-connection and per-user
        # publish limits: lift them out of the way.
        publish_rate=1e9,
        publish_burst=1_000_000_000,
        user_publish_rate=1e9,
        user_publish_burst=1_000_000_000,
        tune_gc=os.environ.get("BENCH_TUNE_GC", "1") == "1",
    )
    uvicorn.run(
        create_app(settings, config=config),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        ws_ping_interval=None,
        backlog=4096,
    )


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def _open(url: str, user: str) -> Any:
    ws = await connect(url, additional_headers=_headers(user), compression=None, max_queue=None)
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    return ws


async def _open_many(url: str, count: int, *, concurrency: int = 200) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> Any:
        async with gate:
            return await _open(url, f"user-{n}")

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def idle(url: str, pid: int, count: int) -> dict[str, float]:
    """Hold ``count`` sockets; the server's RSS growth per socket."""
    warm = await _open_many(url, 50)
    for ws in warm:
        await ws.close()
    await asyncio.sleep(0.5)
    before = _rss_kib(pid)
    start = time.perf_counter()
    sockets = await _open_many(url, count)
    opened = time.perf_counter() - start
    await asyncio.sleep(1.0)
    after = _rss_kib(pid)
    # Prove they are all alive: one ping each.
    for ws in sockets:
        await ws.send('{"type":"ping"}')
    alive = sum([json.loads(await ws.recv())["type"] == "pong" for ws in sockets])
    await asyncio.gather(*(ws.close() for ws in sockets))
    return {
        "held": alive,
        "open_seconds": opened,
        "rss_before_mib": before / 1024,
        "rss_after_mib": after / 1024,
        "kib_per_connection": (after - before) / max(count, 1),
    }


def _subscriber_worker(
    url: str, first: int, count: int, messages: int, ready: Any, results: Any
) -> None:
    """A client process: ``count`` subscribers; sends back every latency in ms."""
    import uvloop

    _raise_fd_limit()

    async def run() -> list[float]:
        sockets = await _open_many(url, count, concurrency=100)
        for n, ws in enumerate(sockets):
            await ws.send(json.dumps({"type": "subscribe", "channel": CHANNEL, "ref": n}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
        # The clients' own collector pauses would count as server latency: keep them out.
        gc.freeze()
        gc.disable()
        ready.put(count)
        latencies: list[float] = []

        async def collect(ws: Any) -> None:
            for _ in range(messages):
                frame = json.loads(await ws.recv())
                if frame["data"]["n"] >= 0:  # warm-up messages are not counted
                    latencies.append((time.time() - frame["data"]["t"]) * 1000)

        await asyncio.gather(*(collect(ws) for ws in sockets))
        await asyncio.gather(*(ws.close() for ws in sockets))
        return latencies

    results.put(uvloop.run(run()))


async def fanout(url: str, subscribers: int, messages: int, rate: float, workers: int) -> Any:
    """Latencies from one publisher to ``subscribers`` sockets."""
    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    share = subscribers // workers
    processes = [
        context.Process(
            target=_subscriber_worker,
            args=(url, n * share, share, messages, ready, results),
        )
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        await asyncio.to_thread(ready.get, True, 120)
    publisher = await _open(url, "publisher")
    for n in range(-WARMUP, messages - WARMUP):
        payload = {"type": "publish", "channel": CHANNEL, "data": {"t": time.time(), "n": n}}
        await publisher.send(json.dumps(payload))
        await publisher.recv()
        await asyncio.sleep(1 / rate)
    latencies: list[float] = []
    for _ in processes:
        latencies.extend(await asyncio.to_thread(results.get, True, 120))
    for process in processes:
        process.join(30)
    await publisher.close()
    return latencies


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the realtime server exited while starting")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("the realtime server did not start within 30 s")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    """Parse arguments, run both phases against a fresh server, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--subscribers", type=int, default=1_000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--workers", type=int, default=2, help="subscriber processes")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    limit = _raise_fd_limit()
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.realtime", "--serve", str(port)], env=env
    )
    try:
        _wait_listening(port, server)
        url = f"ws://127.0.0.1:{port}/ws"
        held = asyncio.run(idle(url, server.pid, min(args.connections, limit - 100)))
        time.sleep(3)  # let the server finish closing the idle sockets
        latencies = asyncio.run(
            fanout(url, args.subscribers, args.messages + WARMUP, args.rate, args.workers)
        )
    finally:
        server.terminate()
        server.wait(10)
    p50, p99 = _percentile(latencies, 0.50), _percentile(latencies, 0.99)
    rows = [
        ("idle connections held (one process)", f"{held['held']:,}", "≥ 10,000"),
        ("time to open them", f"{held['open_seconds']:.1f} s", ""),
        ("server RSS before / after", f"{held['rss_before_mib']:.0f} / "
         f"{held['rss_after_mib']:.0f} MiB", ""),
        ("server RSS per connection", f"{held['kib_per_connection']:.1f} KiB", ""),
        (f"fan-out to {args.subscribers:,} subscribers, p50", f"{p50:.1f} ms", ""),
        (f"fan-out to {args.subscribers:,} subscribers, p99", f"{p99:.1f} ms", "≤ 50 ms"),
        ("fan-out samples (messages x subscribers)", f"{len(latencies):,}", ""),
        ("fan-out mean / max", f"{statistics.fmean(latencies):.1f} / {max(latencies):.1f} ms", ""),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"\n{'metric':<{width}}  {'value':>20}  goal")
    print("-" * (width + 32))
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>20}  {goal}")


if __name__ == "__main__":
    main()
