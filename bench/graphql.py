"""GraphQL against REST through the same gateway: one list, both ways, side by side.

    .venv/bin/python -m bench.graphql [--duration 8] [--rounds 2] [--connections 16]

``orchestrion up`` (1 process, SQLite, a rate limit no request reaches) holds 20
workflows; wrk (``-t1 --latency``) loads, in turn:

- REST: ``GET /api/v1/workflows?limit=20`` (the whole items);
- GraphQL: ``POST /graphql`` asking the same page for ``id name version status tags``
  (the resolver makes that same REST call in process, then shapes the answer).

Each row is first checked to answer 200 with 20 workflows. RPS, p50 and p99 are medians
over ``--rounds``; the last line is GraphQL's share of REST's RPS. wrk is installed
with apt-get when missing and this runs as root.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

from bench.wrk import Processes, Sample, ensure_tools, free_port, wait_ready, wrk

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "load-test-password-1234"
EMAIL = "bench@orchestrion.local"
QUERY = "{ workflows(pagination: {limit: 20}) { edges { node { id name version status tags } } } }"
DEFINITION = {
    "inputs": {"type": "object"},
    "steps": [{"id": "one", "type": "transform", "with": {"value": 1}}],
    "tags": ["bench"],
}


def _prepare(base: str) -> dict[str, str]:
    login = httpx.post(f"{base}/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    for index in range(20):
        created = httpx.post(
            f"{base}/api/v1/workflows", json={**DEFINITION, "name": f"bench-{index}"},
            headers=headers,
        )  # fmt: skip
        created.raise_for_status()
    rest = httpx.get(f"{base}/api/v1/workflows?limit=20", headers=headers)
    graphql = httpx.post(f"{base}/graphql", json={"query": QUERY}, headers=headers)
    if rest.status_code != 200 or len(rest.json()["data"]) != 20:
        raise RuntimeError(f"REST row is broken: {rest.status_code} {rest.text[:200]}")
    if graphql.status_code != 200 or len(graphql.json()["data"]["workflows"]["edges"]) != 20:
        raise RuntimeError(f"GraphQL row is broken: {graphql.status_code} {graphql.text[:200]}")
    return headers


def _median(samples: list[Sample]) -> tuple[float, float, float]:
    return (
        statistics.median(s.rps for s in samples),
        statistics.median(s.p50_ms for s in samples),
        statistics.median(s.p99_ms for s in samples),
    )


def main() -> None:
    """Start the platform, load both rows, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    ensure_tools()
    with tempfile.TemporaryDirectory(prefix="orchestrion-bench-graphql-") as workdir:
        home = Path(workdir)
        port = free_port()
        processes = Processes(home)
        env = {
            "ORCHESTRION_DATA_DIR": str(home / "data"),
            "ORCHESTRION_ADMIN_EMAIL": EMAIL,
            "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
            "ORCHESTRION_GATEWAY__RATE_LIMIT": "100000000/minute",
            "ORCHESTRION_OBSERVABILITY__ACCESS_LOG": "false",
            # This checkout's code, whichever one the virtualenv installed.
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        }
        try:
            processes.start("up", [str(BIN / "orchestrion"), "up", "--port", str(port)], env)
            base = f"http://127.0.0.1:{port}"
            wait_ready(f"{base}/health/live", processes, "up", timeout=120)
            headers = _prepare(base)
            script = home / "graphql.lua"
            body = json.dumps({"query": QUERY})
            script.write_text(
                'wrk.method = "POST"\n'
                f"wrk.body = {json.dumps(body)}\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
            rows: dict[str, list[Sample]] = {"REST list": [], "GraphQL list": []}
            for _ in range(args.rounds):
                rows["REST list"].append(
                    wrk(f"{base}/api/v1/workflows?limit=20", headers,
                        connections=args.connections, duration=args.duration)
                )  # fmt: skip
                rows["GraphQL list"].append(
                    wrk(f"{base}/graphql", headers, connections=args.connections,
                        duration=args.duration, script=script)
                )  # fmt: skip
        finally:
            processes.stop()
    print(f"{'row':<14} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    figures = {name: _median(samples) for name, samples in rows.items()}
    for name, (rps, p50, p99) in figures.items():
        print(f"{name:<14} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f}")
    ratio = figures["GraphQL list"][0] / figures["REST list"][0]
    print(f"GraphQL / REST throughput: {ratio:.2f}")


if __name__ == "__main__":
    main()
