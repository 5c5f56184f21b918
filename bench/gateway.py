"""Gateway benchmark: the Orchestrion gateway against nginx and naive Python proxies.

    .venv/bin/python -m bench.gateway [--duration 8] [--rounds 2] [--connections 32]

One fast upstream (Starlette, ~70-byte JSON, uvicorn + httptools, 1 worker) and, side
by side in one run, every row in its own process on 127.0.0.1, loaded by
``wrk -t1 -c32 -d8s --latency`` on ``/bench``:

- upstream direct: wrk against the upstream itself;
- nginx: 1 worker as a reverse proxy keeping upstream connections alive;
- naive aiohttp / naive httpx: Starlette proxies with one pooled client (bench.gateway_apps);
- orchestrion gateway: 1 worker, JWT auth (an access token from logging in through the
  gateway at ``orchestrion serve auth``), Redis rate limiting (a limit no request
  reaches), metrics, ``/bench`` routed to the upstream.

Each row is first checked to answer 200 with the upstream's body; a row that does not
is reported failed, never measured. RPS, p50 and p99 are medians over ``--rounds``.
Then the gateway and the direct row are loaded at half the gateway's RPS, paced by a
wrk Lua ``delay()`` (wrk2 is not packaged), to report the p99 the gateway adds.
wrk and nginx are installed with apt-get when missing and this runs as root.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.gateway_apps import BODY
from bench.wrk import (
    Paced,
    Processes,
    Sample,
    ensure_tools,
    free_port,
    paced,
    wait_ready,
    which,
    wrk,
)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN = ("bench@orchestrion.local", "load-test-password-1234")
GOAL_VS_NGINX, GOAL_VS_AIOHTTP, GOAL_ADDED_P99_MS = 0.35, 1.6, 5.0


@dataclass
class Row:
    """A system under test and its samples."""

    name: str
    url: str
    process: str
    headers: dict[str, str] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    failed: str | None = None

    def median(self, attribute: str) -> float:
        return float(statistics.median(getattr(s, attribute) for s in self.samples))

    def errors(self) -> int:
        return sum(s.non_2xx + s.socket_errors for s in self.samples)


def uvicorn(app: str, port: int) -> list[str]:
    return [
        str(BIN / "python"), "-m", "uvicorn", f"bench.gateway_apps:{app}", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", "uvloop",
        "--http", "httptools", "--no-access-log", "--no-proxy-headers", "--log-level", "warning",
    ]  # fmt: skip


NGINX_CONF = """\
daemon off;
master_process {master};
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream bench {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port}{reuseport};
        location / {{
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

GATEWAY_YAML = """\
upstreams:
  bench:
    instances: ["http://127.0.0.1:{upstream}"]
routes:
  - prefix: /bench
    service: bench
"""


def gateway_options() -> str:
    """``orchestrion gateway --help``: which options this build's command takes."""
    return subprocess.run(
        [str(BIN / "orchestrion"), "gateway", "--help"], capture_output=True, text=True, check=False
    ).stdout


def start_nginx(processes: Processes, workdir: Path, *, upstream: int, workers: int) -> Row:
    """nginx with ``workers`` worker processes (a master process and ``reuseport`` when
    more than 1, like the gateway's workers) in front of the upstream."""
    port, name = free_port(), "nginx" if workers == 1 else f"nginx{workers}"
    home = workdir / name
    home.mkdir()
    conf = home / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            dir=home, upstream=upstream, port=port, workers=workers,
            master="off" if workers == 1 else "on", reuseport="" if workers == 1 else " reuseport",
        )
    )  # fmt: skip
    nginx_bin = which("nginx") or "nginx"
    processes.start(
        name, [nginx_bin, "-c", str(conf), "-p", str(home), "-e", str(home / "nginx-error.log")]
    )
    label = f"nginx {workers} worker{'s' if workers > 1 else ''} (keep-alive)"
    return Row(label, f"http://127.0.0.1:{port}/bench", name)


def start_auth(processes: Processes, workdir: Path, rate_limit: str) -> tuple[int, dict[str, str]]:
    """The auth service on a fresh SQLite data dir; its port, and the environment a
    gateway shares with it (the secret, Redis, ``rate_limit``, no access log)."""
    auth = free_port()
    env = {
        "ORCHESTRION_DATA_DIR": str(workdir / "data"),
        "ORCHESTRION_SECRET_KEY": os.urandom(24).hex(),
        "ORCHESTRION_ADMIN_EMAIL": ADMIN[0],
        "ORCHESTRION_ADMIN_PASSWORD": ADMIN[1],
        "ORCHESTRION_AUTH__ACCESS_TOKEN_TTL_SECONDS": "86400",
        "ORCHESTRION_REDIS__URL": "redis://127.0.0.1:6379/0",
        "ORCHESTRION_GATEWAY__RATE_LIMIT": rate_limit,
        # Like the nginx row (access_log off): no line per request; errors still logged.
        "ORCHESTRION_OBSERVABILITY__ACCESS_LOG": "false",
        "ORCHESTRION_DATABASE__URL": "",
    }
    orchestrion = str(BIN / "orchestrion")
    subprocess.run(
        [orchestrion, "db", "upgrade"], cwd=workdir, env={**os.environ, **env},
        stdout=subprocess.DEVNULL, check=True,
    )  # fmt: skip
    processes.start(
        "auth", [orchestrion, "serve", "auth", "--host", "127.0.0.1", "--port", str(auth)], env
    )
    wait_ready(f"http://127.0.0.1:{auth}/health/live", processes, "auth")
    return auth, env


def start_rows(
    processes: Processes,
    workdir: Path,
    *,
    rate_limit: str,
    gateway_workers: int,
    variants: bool = False,
) -> tuple[list[Row], str]:
    """Start the upstream and every row; returns the rows and how the gateway was started.

    With ``gateway_workers`` > 1, an nginx row and a gateway row with that many workers
    follow the 1-worker ones. With ``variants``, two more 1-worker gateways: one without
    the rate limit, one without it on a public route (no auth either)."""
    upstream = free_port()
    processes.start("upstream", uvicorn("upstream", upstream))
    target = f"http://127.0.0.1:{upstream}"
    wait_ready(target + "/bench", processes, "upstream")
    rows = [Row("upstream direct", f"{target}/bench", "upstream")]

    rows.append(start_nginx(processes, workdir, upstream=upstream, workers=1))

    for app, name in (
        ("aiohttp_proxy", "naive aiohttp proxy"),
        ("httpx_proxy", "naive httpx proxy"),
    ):
        port = free_port()
        processes.start(app, uvicorn(app, port), {"BENCH_TARGET": target})
        rows.append(Row(name, f"http://127.0.0.1:{port}/bench", app))
    port = free_port()
    processes.start(
        "floor",
        [str(BIN / "python"), "-m", "bench.gateway_floor", "--port", str(port), "--target", target],
    )
    rows.append(
        Row("python floor (uvloop + httptools, no ASGI)", f"http://127.0.0.1:{port}/bench", "floor")
    )
    port = free_port()
    processes.start("asgi_floor", uvicorn("asgi_floor", port), {"BENCH_TARGET": target})
    rows.append(
        Row("asgi floor (the same under uvicorn)", f"http://127.0.0.1:{port}/bench", "asgi_floor")
    )

    auth, env = start_auth(processes, workdir, rate_limit)
    gateway = free_port()
    orchestrion = str(BIN / "orchestrion")
    options = gateway_options()
    if "--config" in options:
        (workdir / "gateway.yaml").write_text(GATEWAY_YAML.format(upstream=upstream))
        command = [
            orchestrion, "gateway", "--host", "127.0.0.1", "--port", str(gateway),
            "--upstream", f"auth=http://127.0.0.1:{auth}",
            "--config", str(workdir / "gateway.yaml"),
        ]  # fmt: skip
        how = "orchestrion gateway --config"
    else:
        command = uvicorn("orchestrion_gateway", gateway)
        env |= {"BENCH_TARGET": target, "BENCH_AUTH_URL": f"http://127.0.0.1:{auth}"}
        how = "bench.gateway_apps:orchestrion_gateway (create_gateway; no --config in this build)"
    processes.start("gateway", command, env)
    rows.append(Row("orchestrion gateway", f"http://127.0.0.1:{gateway}/bench", "gateway"))
    single = command
    several = gateway_workers > 1 and "--workers" in options and command[1] == "gateway"
    if several:
        rows.append(start_nginx(processes, workdir, upstream=upstream, workers=gateway_workers))
        port = free_port()
        at = command.index(str(gateway))
        command = [*command[:at], str(port), *command[at + 1 :], "--workers", str(gateway_workers)]
        processes.start("gateway_workers", command, env)
        label = f"orchestrion gateway, {gateway_workers} workers"
        rows.append(Row(label, f"http://127.0.0.1:{port}/bench", "gateway_workers"))
    if variants and single[1] == "gateway":
        config = workdir / "gateway.yaml"
        (workdir / "public.yaml").write_text(config.read_text() + "    public: true\n")
        for name, label, yaml in (
            ("gateway_no_limit", "orchestrion gateway, no rate limit", config),
            ("gateway_public", "orchestrion gateway, no rate limit, public route",
             workdir / "public.yaml"),
        ):  # fmt: skip
            port = free_port()
            at = single.index(str(gateway))
            variant = [*single[:at], str(port), *single[at + 1 :]]
            variant[variant.index(str(config))] = str(yaml)
            processes.start(name, variant, {**env, "ORCHESTRION_GATEWAY__RATE_LIMIT": ""})
            rows.append(Row(label, f"http://127.0.0.1:{port}/bench", name))
    for row in rows[1:]:
        try:
            wait_ready(row.url, processes, row.process)
            if row.process == "gateway_workers":
                # Answering means one worker is up: the row is loaded once all are.
                processes.wait_logged(row.process, "ready (pid", gateway_workers)
        except RuntimeError as exc:
            row.failed = str(exc)
    return rows, how


def login(gateway: Row) -> str:
    """An access token, from logging in through the gateway."""
    base = gateway.url.removesuffix("/bench")
    answer = httpx.post(
        f"{base}/api/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]}, timeout=30
    )
    if answer.status_code != 200:
        raise RuntimeError(f"login through the gateway: {answer.status_code} {answer.text[:200]}")
    token: str = answer.json()["access_token"]
    return token


def check(row: Row) -> None:
    """A row must answer 200 with the upstream's body before it is measured."""
    if row.failed:
        return
    try:
        answer = httpx.get(row.url, headers=row.headers, timeout=10)
    except httpx.HTTPError as exc:
        row.failed = f"{type(exc).__name__}: {exc}"
        return
    if answer.status_code != 200 or answer.content != BODY:
        row.failed = f"answered {answer.status_code} {answer.text[:120]!r}"


# --- the run ------------------------------------------------------------------------


def measure(rows: list[Row], processes: Processes, args: argparse.Namespace) -> None:
    """Warm every healthy row up, then ``--rounds`` rounds over all of them in turn."""
    live = [row for row in rows if not row.failed]
    for row in live:
        wrk(row.url, row.headers, connections=args.connections, duration=args.warmup)
    for _ in range(args.rounds):
        for row in live:
            try:
                # The row's own CPU per request is steadier than RPS on a shared machine.
                cpu = processes.cpu_seconds(row.process)
                sample = wrk(
                    row.url, row.headers, connections=args.connections, duration=args.duration
                )
                cpu = processes.cpu_seconds(row.process) - cpu
                sample.cpu_us_per_request = cpu * 1e6 / max(1, sample.requests)
                row.samples.append(sample)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                row.failed = str(exc)


def _ratio(value: float, base: Row | None) -> str:
    if base is None or base.failed or not base.samples:
        return "-"
    return f"{value / base.median('rps'):.2f}x"


def table(rows: list[Row]) -> str:
    by_name = {row.process: row for row in rows}
    nginx, direct = by_name.get("nginx"), by_name.get("upstream")
    lines = [
        "| row | RPS | p50 ms | p99 ms | non-2xx | socket errors | CPU us/req "
        "| vs nginx | vs direct |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row.failed or not row.samples:
            lines.append(f"| {row.name} | FAILED: {row.failed or 'no samples'} | | | | | | | |")
            continue
        rps = row.median("rps")
        lines.append(
            f"| {row.name} | {rps:,.0f} | {row.median('p50_ms'):.2f} | {row.median('p99_ms'):.2f} "
            f"| {sum(s.non_2xx for s in row.samples)} "
            f"| {sum(s.socket_errors for s in row.samples)} "
            f"| {row.median('cpu_us_per_request'):,.0f} "
            f"| {_ratio(rps, nginx)} | {_ratio(rps, direct)} |"
        )
    return "\n".join(lines)


def verdict(rows: list[Row], half: tuple[Paced, Paced] | None) -> str:
    """The gateway against its three goals."""
    by_name = {row.process: row for row in rows}
    gateway, nginx, naive = by_name["gateway"], by_name["nginx"], by_name["aiohttp_proxy"]

    def ok(met: bool) -> str:
        return "met" if met else "MISSED"

    if gateway.failed or not gateway.samples or gateway.errors():
        return "gateway: FAILED (or answered errors under load): goals not evaluated"
    parts = []
    for base, goal, label in (
        (nginx, GOAL_VS_NGINX, "nginx"),
        (naive, GOAL_VS_AIOHTTP, "naive aiohttp"),
    ):
        if base.failed or not base.samples:
            parts.append(f"{label} row failed")
            continue
        ratio = gateway.median("rps") / base.median("rps")
        parts.append(f"{ratio:.2f}x {label} (goal >= {goal:g}x: {ok(ratio >= goal)})")
    if half is not None:
        added = half[1].p99() - half[0].p99()
        met = ok(added <= GOAL_ADDED_P99_MS)
        parts.append(f"+{added:.2f} ms p99 at half load (goal <= {GOAL_ADDED_P99_MS:g} ms: {met})")
    else:
        parts.append("half load not measured")
    return "gateway: " + "; ".join(parts)


def floor_line(rows: list[Row]) -> str | None:
    """Where the gateway's CPU per request goes: the python floor's (Python and the event
    loop), what uvicorn's ASGI cycle adds (the asgi floor), and the gateway's own."""
    by_name = {row.process: row for row in rows}
    gateway = by_name["gateway"]
    floors = [by_name.get("floor"), by_name.get("asgi_floor")]
    if gateway.failed or not gateway.samples:
        return None
    if any(row is None or row.failed or not row.samples for row in floors):
        return None
    least, asgi = (row.median("cpu_us_per_request") for row in floors if row is not None)
    own = gateway.median("cpu_us_per_request")
    line = (
        f"CPU us/req: python floor {least:,.0f}, + uvicorn's ASGI cycle {asgi - least:,.0f} "
        f"(asgi floor {asgi:,.0f}), + the gateway's own work {own - asgi:,.0f} "
        f"(gateway {own:,.0f}, {own / least:.2f}x the python floor)"
    )
    unlimited, public = by_name.get("gateway_no_limit"), by_name.get("gateway_public")
    if (
        unlimited is not None and unlimited.samples and not unlimited.failed
        and public is not None and public.samples and not public.failed
    ):  # fmt: skip
        free = unlimited.median("cpu_us_per_request")
        anonymous = public.median("cpu_us_per_request")
        line += (
            f"; of its own work, the rate limit {own - free:,.0f} (gateway minus no rate "
            f"limit), auth {free - anonymous:,.0f} (minus public route), the rest "
            f"{anonymous - asgi:,.0f}"
        )
    return line


def workers_line(rows: list[Row]) -> str | None:
    """The several-worker gateway against nginx with as many workers, and the 1-worker
    rows (the goals stay defined against the 1-worker rows)."""
    by_name = {row.process: row for row in rows}
    several = by_name.get("gateway_workers")
    if several is None:
        return None
    if several.failed or not several.samples or several.errors():
        return f"{several.name}: FAILED (or answered errors under load)"
    rps = several.median("rps")
    nginx = next(row for row in rows if row.process.startswith("nginx") and row.process != "nginx")
    parts = [
        f"{_ratio(rps, base)} {base.name}"
        for base in (nginx, by_name["nginx"], by_name["aiohttp_proxy"], by_name["gateway"])
    ]
    return f"{several.name}: " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per row (medians)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk per row first")
    parser.add_argument("--rate-limit", default="100000000/minute", help="gateway rate limit")
    parser.add_argument("--no-half-load", action="store_true", help="skip the half-load runs")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    parser.add_argument(
        "--variants", action="store_true",
        help="also gateways without the rate limit, and without auth (what each costs)",
    )  # fmt: skip
    parser.add_argument(
        "--gateway-workers", type=int, default=2,
        help="also rows of nginx and the gateway with this many workers (1: none)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    ensure_tools()
    workdir = Path(tempfile.mkdtemp(prefix="orchestrion-bench-gw-"))
    processes = Processes(workdir)
    half: tuple[Paced, Paced] | None = None
    notes: list[str] = []
    try:
        rows, how = start_rows(
            processes, workdir, rate_limit=args.rate_limit,
            gateway_workers=args.gateway_workers, variants=args.variants,
        )  # fmt: skip
        gateway = next(row for row in rows if row.process == "gateway")
        if not gateway.failed:
            try:
                gateway.headers["Authorization"] = f"Bearer {login(gateway)}"
            except (RuntimeError, httpx.HTTPError) as exc:
                gateway.failed = str(exc)
        for row in rows:
            if row.process.startswith("gateway_"):
                row.headers = dict(gateway.headers)  # one auth service, one secret
        for row in rows:
            check(row)
        if not gateway.failed:
            notes += gateway_notes(gateway)
        measure(rows, processes, args)
        direct = rows[0]
        if not args.no_half_load and gateway.samples and direct.samples and not gateway.failed:
            target = gateway.median("rps") / 2
            half = tuple(  # type: ignore[assignment]
                paced(
                    row.url,
                    row.headers,
                    target,
                    workdir / f"paced-{row.process}.lua",
                    duration=args.duration,
                    rounds=args.rounds,
                )
                for row in (direct, gateway)
            )
    finally:
        processes.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"$ {' '.join([Path(sys.executable).name, '-m', 'bench.gateway', *sys.argv[1:]])}")
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration:g}s --latency on /bench "
        f"({len(BODY)}-byte JSON upstream), medians of {args.rounds} rounds; "
        f"gateway: {how}\n"
    )
    print(table(rows))
    print()
    for note in notes:
        print(f"- {note}")
    if half is not None:
        d, g = half
        print(
            f"- half load: {d.target:,.0f} req/s offered, paced by wrk Lua delay() over "
            f"{d.connections} connections (wrk2 not packaged): direct {d.rps():,.0f} req/s "
            f"p99 {d.p99():.2f} ms, gateway {g.rps():,.0f} req/s p99 {g.p99():.2f} ms, "
            f"errors {sum(s.non_2xx + s.socket_errors for s in g.samples)}"
        )
    print(verdict(rows, half))
    for line in (floor_line(rows), workers_line(rows)):
        if line is not None:
            print(line)
    if args.keep:
        print(f"logs and configs kept in {workdir}")


def gateway_notes(gateway: Row) -> list[str]:
    """What the gateway row was seen doing: rate-limit headers, metrics."""
    answer = httpx.get(gateway.url, headers=gateway.headers, timeout=10)
    limited = sorted(k for k in answer.headers if "ratelimit" in k.lower())
    notes = [
        f"gateway rate limit headers: {', '.join(limited)}"
        if limited
        else "gateway answered without RateLimit-* headers: rate limiting not seen active"
    ]
    metrics = httpx.get(gateway.url.removesuffix("/bench") + "/metrics", timeout=10)
    notes.append(f"gateway /metrics: {metrics.status_code}, {len(metrics.content)} bytes")
    notes.append("gateway access log off, as nginx's (ORCHESTRION_OBSERVABILITY__ACCESS_LOG=false)")
    return notes


if __name__ == "__main__":
    main()
