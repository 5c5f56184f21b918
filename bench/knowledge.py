"""Knowledge graph: import rate, shortest paths and PageRank, side by side with NetworkX.

    .venv/bin/python -m bench.knowledge [--sizes 10000,100000] [--pairs 20] [--no-postgres]

For each size (edges; nodes = edges / 5, so mean out-degree 5), one random directed
graph with weights in [0.1, 10) is generated with a fixed seed, then:

- import: ``POST /api/v1/knowledge/import`` through the embedded gateway (in-process
  ASGI, rate limit off), in batches of 10,000 (each one transaction, short enough that
  SQLite's single writer lock never keeps the other services waiting past their busy
  timeout), edges naming the nodes of earlier batches by id; rows/s. Baseline:
  building the same NetworkX ``DiGraph`` in memory (what any in-memory use pays first).
- load: the first algorithm call after the import reads the graph from the database
  and builds the arrays; later calls reuse it until the graph changes.
- path (bfs / dijkstra / astar): ``GET /api/v1/knowledge/path`` for random pairs that
  have a path, p50 over ``--pairs``; the same algorithm on the loaded arrays without
  HTTP ("in memory"); and NetworkX ``shortest_path`` (BFS), ``dijkstra_path`` and
  ``astar_path`` (no heuristic: NetworkX has no bound to use without coordinates).
- pagerank: ``GET /api/v1/knowledge/pagerank?limit=20``; in memory; ``nx.pagerank``.

Ratios are ours / NetworkX (below 1: faster). Rows on PostgreSQL need 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import networkx as nx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from orchestrion.migrations import upgrade
from orchestrion.platform import create_embedded_app
from orchestrion.services.knowledge.algorithms import Graph
from orchestrion.settings import Settings

BASE = "/api/v1/knowledge"
PASSWORD = "bench-password-1"
NODE_BATCH = 10_000
EDGE_BATCH = 10_000


def generate(edges: int, seed: int = 7) -> tuple[int, list[tuple[int, int, float]]]:
    """A random directed graph: its node count and ``(u, v, weight)`` edges."""
    rng = random.Random(seed)
    nodes = max(2, edges // 5)
    rows = [
        (rng.randrange(nodes), rng.randrange(nodes), round(rng.uniform(0.1, 10.0), 3))
        for _ in range(edges)
    ]
    return nodes, rows


def reference(nodes: int, edges: list[tuple[int, int, float]]) -> nx.DiGraph:
    """The NetworkX graph: the lightest of parallel edges, as our paths use."""
    graph = nx.DiGraph()
    graph.add_nodes_from(range(nodes))
    for u, v, w in sorted(edges, key=lambda e: -e[2]):
        graph.add_edge(u, v, weight=w)
    return graph


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``function`` took, and what it returned."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


async def atimed(coroutine: Any) -> tuple[float, Any]:
    """Seconds ``coroutine`` took, and its result."""
    start = time.perf_counter()
    result = await coroutine
    return time.perf_counter() - start, result


async def import_graph(
    http: httpx.AsyncClient, headers: dict[str, str], nodes: int, edges: list[Any]
) -> list[str]:
    """Import the graph in batches; the node ids in node order."""
    ids: list[str] = []
    for start in range(0, nodes, NODE_BATCH):
        body = {
            "nodes": [
                {"key": str(i), "type": "concept", "name": f"node {i}"}
                for i in range(start, min(nodes, start + NODE_BATCH))
            ]
        }
        response = await http.post(f"{BASE}/import", json=body, headers=headers)
        response.raise_for_status()
        keys = response.json()["ids"]
        ids.extend(keys[str(i)] for i in range(start, min(nodes, start + NODE_BATCH)))
    for start in range(0, len(edges), EDGE_BATCH):
        body = {
            "edges": [
                {"source": ids[u], "target": ids[v], "type": "link", "weight": w}
                for u, v, w in edges[start : start + EDGE_BATCH]
            ]
        }
        response = await http.post(f"{BASE}/import", json=body, headers=headers)
        response.raise_for_status()
    return ids


def settings_for(url: str, data_dir: Path) -> Settings:
    """Embedded settings on ``url`` with the rate limit and embeddings off (this measures
    the graph; ``bench/embeddings.py`` measures the model)."""
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": data_dir,
        "admin_email": "admin@example.com",
        "admin_password": SecretStr(PASSWORD),
        "secret_key": SecretStr(uuid.uuid4().hex * 2),
        "database": {"url": url},
        "gateway": {"rate_limit": ""},
        "observability": {"log_level": "WARNING"},
        "embeddings": {"provider": "none"},
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def p50(values: list[float]) -> float:
    """The median."""
    return statistics.median(values)


async def measure(
    url: str, data_dir: Path, nodes: int, edges: list[Any], graph: nx.DiGraph, pairs: int
) -> list[tuple[str, float, float]]:
    """Rows ``(what, ours in seconds, networkx in seconds)`` on one database."""
    rows: list[tuple[str, float, float]] = []
    app = create_embedded_app(settings_for(url, data_dir))
    async with LifespanManager(app, startup_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=600
        ) as http:
            login = await http.post(
                "/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            took, ids = await atimed(import_graph(http, headers, nodes, edges))
            built, _ = timed(lambda: reference(nodes, edges))
            rows.append((f"import ({nodes + len(edges):,} rows) s", took, built))
            rows.append(
                ("import rows/s", (nodes + len(edges)) / took, (nodes + len(edges)) / built)
            )
            loaded, _ = await atimed(http.get(f"{BASE}/pagerank?limit=1", headers=headers))
            rows.append(("first call: load + pagerank s", loaded, float("nan")))
            rows.extend(await _paths(http, headers, ids, nodes, edges, graph, pairs))
            api: list[float] = []
            for _ in range(3):
                took, response = await atimed(
                    http.get(f"{BASE}/pagerank?limit=20", headers=headers)
                )
                response.raise_for_status()
                api.append(took)
            memory = Graph.build(
                ids, [(str(i), ids[u], ids[v], w) for i, (u, v, w) in enumerate(edges)]
            )
            mem = p50([timed(memory.pagerank)[0] for _ in range(3)])
            ref = p50([timed(lambda: nx.pagerank(graph))[0] for _ in range(3)])
            rows.append(("pagerank API s", p50(api), ref))
            rows.append(("pagerank in memory s", mem, ref))
    return rows


async def _paths(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    ids: list[str],
    nodes: int,
    edges: list[Any],
    graph: nx.DiGraph,
    pairs: int,
) -> list[tuple[str, float, float]]:
    rng = random.Random(11)
    chosen: list[tuple[int, int]] = []
    while len(chosen) < pairs:
        s, t = rng.randrange(nodes), rng.randrange(nodes)
        if s != t and nx.has_path(graph, s, t):
            chosen.append((s, t))
    memory = Graph.build(ids, [(str(i), ids[u], ids[v], w) for i, (u, v, w) in enumerate(edges)])
    index = {i: memory.index_of(node_id) for i, node_id in enumerate(ids)}
    baselines: dict[str, Callable[[int, int], Any]] = {
        "bfs": lambda s, t: nx.shortest_path(graph, s, t),
        "dijkstra": lambda s, t: nx.dijkstra_path(graph, s, t, weight="weight"),
        "astar": lambda s, t: nx.astar_path(graph, s, t, weight="weight"),
    }
    rows = []
    for algorithm, baseline in baselines.items():
        api, mem, ref = [], [], []
        for s, t in chosen:
            took, response = await atimed(
                http.get(
                    f"{BASE}/path?from={ids[s]}&to={ids[t]}&algorithm={algorithm}", headers=headers
                )
            )
            response.raise_for_status()
            api.append(took)
            ours = getattr(memory, algorithm)
            mem.append(timed(lambda s=s, t=t, ours=ours: ours(index[s], index[t]))[0])
            ref.append(timed(lambda s=s, t=t, theirs=baseline: theirs(s, t))[0])
        rows.append((f"path {algorithm} API p50 s", p50(api), p50(ref)))
        rows.append((f"path {algorithm} in memory p50 s", p50(mem), p50(ref)))
    return rows


async def postgres_database() -> tuple[str, Callable[[], Any]]:
    """A fresh migrated database and the coroutine function that drops it."""
    name = f"orchestrion_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await asyncio.to_thread(upgrade, url)

    async def drop() -> None:
        connection = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()

    return url, drop


def _figure(value: float) -> str:
    if value != value:  # NaN: no baseline
        return "-"
    return f"{value * 1000:.2f} ms" if value < 1 else f"{value:.2f} s"


def print_table(title: str, rows: list[tuple[str, float, float]]) -> None:
    """One database's rows at one size."""
    print(f"\n{title}")
    header = f"{'row':38} {'ours':>12} {'networkx':>12} {'ours/nx':>8}"
    print(header)
    print("-" * len(header))
    for what, ours, theirs in rows:
        if what.endswith("rows/s"):
            ratio = theirs / ours  # time ratio, like the others
            print(f"{what:38} {ours:>12,.0f} {theirs:>12,.0f} {ratio:>7.1f}x")
            continue
        ratio = "-" if theirs != theirs else f"{ours / theirs:.2f}x"
        label = what.removesuffix(" s")
        print(f"{label:38} {_figure(ours):>12} {_figure(theirs):>12} {ratio:>8}")


async def main() -> None:
    """Parse arguments, run each size on each database, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(f"$ {' '.join([Path(sys.executable).name, '-m', 'bench.knowledge', *sys.argv[1:]])}")
    for size in [int(s) for s in args.sizes.split(",")]:
        nodes, edges = generate(size)
        graph = reference(nodes, edges)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "data" / "orchestrion.db"
            path.parent.mkdir(parents=True)
            url = f"sqlite+aiosqlite:///{path}"
            await asyncio.to_thread(upgrade, url)
            rows = await measure(url, Path(tmp) / "data", nodes, edges, graph, args.pairs)
            print_table(f"SQLite, {size:,} edges, {nodes:,} nodes", rows)
            if not args.no_postgres:
                pg, drop = await postgres_database()
                try:
                    rows = await measure(pg, Path(tmp) / "data", nodes, edges, graph, args.pairs)
                finally:
                    await drop()
                print_table(f"PostgreSQL, {size:,} edges, {nodes:,} nodes", rows)


if __name__ == "__main__":
    asyncio.run(main())
