"""A/B of two builds of the gateway, side by side on a shared machine.

    .venv/bin/python -m bench.gateway_ab --baseline /tmp/gw_before [--pairs 16] [--duration 4]
                                         [--baseline-env NAME=VALUE]

``--baseline`` is another checkout (``git worktree add /tmp/gw_before HEAD``), or this
one with ``--baseline-env NAME=VALUE`` set for its gateway only (``--baseline .
--baseline-env ORCHESTRION_GATEWAY__RATE_LIMIT=``: what the rate limit costs). One
upstream, one auth service and the local Redis serve two gateways, this checkout's and
the baseline's, set up as ``bench.gateway``'s gateway row (JWT auth, the Redis rate
limit, metrics, access log off); short ``wrk`` runs then alternate between them, the
order swapped every pair. On a machine whose load moves by the minute, runs seconds
apart see the same load: the median over pairs of the baseline's CPU per request over
this checkout's is steadier than any two separate ``bench.gateway`` runs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from bench.gateway import BIN, GATEWAY_YAML, ROOT, Row, login, start_auth, uvicorn
from bench.wrk import Processes, ensure_tools, free_port, wait_ready, wrk


def start(
    processes: Processes,
    workdir: Path,
    trees: dict[str, Path],
    extra: dict[str, dict[str, str]] | None = None,
) -> dict[str, Row]:
    """The upstream, auth and one gateway per tree (``extra``: more environment for
    some); their rows, logged in."""
    upstream = free_port()
    processes.start("upstream", uvicorn("upstream", upstream))
    wait_ready(f"http://127.0.0.1:{upstream}/bench", processes, "upstream")
    # A limit never reached: the Redis rate limit runs, and refuses none of the runs.
    auth, env = start_auth(processes, workdir, "100000000/minute")
    orchestrion = str(BIN / "orchestrion")
    config = workdir / "gateway.yaml"
    config.write_text(GATEWAY_YAML.format(upstream=upstream))
    rows = {}
    for name, tree in trees.items():
        port = free_port()
        command = [
            orchestrion, "gateway", "--host", "127.0.0.1", "--port", str(port),
            "--upstream", f"auth=http://127.0.0.1:{auth}", "--config", str(config),
        ]  # fmt: skip
        own = (extra or {}).get(name, {})
        processes.start(name, command, {**env, "PYTHONPATH": f"{tree / 'src'}:{tree}", **own})
        rows[name] = Row(name, f"http://127.0.0.1:{port}/bench", name)
    for row in rows.values():
        wait_ready(row.url, processes, row.process)
    token = login(next(iter(rows.values())))  # one auth service: one token for both
    for row in rows.values():
        row.headers["Authorization"] = f"Bearer {token}"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    parser.add_argument("--pairs", type=int, default=16, help="runs of each build")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument(
        "--baseline-env", action="append", default=[], metavar="NAME=VALUE",
        help="set for the baseline's gateway only; with --baseline . the cost of a "
        "setting in one build (ORCHESTRION_GATEWAY__RATE_LIMIT= : the rate limit's)",
    )  # fmt: skip
    args = parser.parse_args()
    if any("=" not in pair for pair in args.baseline_env):
        parser.error("--baseline-env takes NAME=VALUE")
    if not (args.baseline / "src" / "orchestrion").is_dir():
        parser.error(f"{args.baseline} is not a checkout (no src/orchestrion)")
    ensure_tools()
    workdir = Path(tempfile.mkdtemp(prefix="orchestrion-bench-gw-ab-"))
    processes = Processes(workdir)
    trees = {"this": ROOT, "baseline": args.baseline.resolve()}
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    rps: dict[str, list[float]] = {name: [] for name in trees}
    try:
        baseline_env = dict(pair.split("=", 1) for pair in args.baseline_env)
        rows = start(processes, workdir, trees, {"baseline": baseline_env})
        for row in rows.values():  # pools fill, code paths warm up
            wrk(row.url, row.headers, connections=args.connections, duration=2)
        for pair in range(args.pairs):
            order = list(rows) if pair % 2 == 0 else list(reversed(rows))
            for name in order:
                row = rows[name]
                before = processes.cpu_seconds(name)
                sample = wrk(
                    row.url, row.headers, connections=args.connections, duration=args.duration
                )
                used = processes.cpu_seconds(name) - before
                if sample.non_2xx or sample.socket_errors:
                    raise RuntimeError(f"{name} answered errors under load: {sample}")
                cpu[name].append(used / max(1, sample.requests) * 1e6)
                rps[name].append(sample.rps)
            load = Path("/proc/loadavg").read_text().split()[0]
            figures = (f"{n} {rps[n][-1]:,.0f} req/s {cpu[n][-1]:,.0f} CPU us/req" for n in rows)
            print(f"pair {pair + 1:2d} (load {load}): " + "  ".join(figures), flush=True)
    finally:
        processes.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    for name in trees:
        print(
            f"{name}: median {statistics.median(rps[name]):,.0f} req/s, "
            f"{statistics.median(cpu[name]):,.0f} CPU us/req"
        )
    cpu_ratio = statistics.median(b / t for t, b in zip(cpu["this"], cpu["baseline"], strict=True))
    rps_ratio = statistics.median(t / b for t, b in zip(rps["this"], rps["baseline"], strict=True))
    print(
        f"median per pair: baseline CPU/request {cpu_ratio:.3f}x this checkout's; this "
        f"checkout's req/s {rps_ratio:.3f}x the baseline's"
    )


if __name__ == "__main__":
    main()
