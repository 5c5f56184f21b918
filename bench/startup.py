"""Start-up: how long the command line and ``orchestrion up`` take to answer.

    .venv/bin/python -m bench.startup [--rounds 5]

Each row is the median of ``--rounds`` runs of a fresh process:

- ``orchestrion version`` and ``orchestrion --help`` to exit (goal: under 0.3 s);
- ``orchestrion up`` until ``/health/ready`` answers 200, on a new data directory (the
  first start: migrations, the admin user, the seeded templates), then again on that
  already-migrated directory (goal: under 3 s).

The baseline column is a bare ``python -c pass`` of the same interpreter: what any
Python command costs before it does anything.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

GOALS = {"version": 0.3, "--help": 0.3, "up (migrated)": 3.0}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _up(data: Path) -> float:
    """Seconds from spawning ``orchestrion up`` to ``/health/ready`` answering 200."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRION_")}
    env.update(
        ORCHESTRION_DATA_DIR=str(data),
        ORCHESTRION_SECRET_KEY="bench-startup-secret-0123456789abcdef",
        ORCHESTRION_ADMIN_PASSWORD="bench-startup-password",
        ORCHESTRION_OBSERVABILITY__LOG_LEVEL="WARNING",
        ORCHESTRION_GRPC__PORT=str(_free_port()),
    )
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrion", "up", "--port", str(port)],
        env=env,
        cwd=data,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - started < 120:
            if process.poll() is not None:
                raise SystemExit("orchestrion up exited")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2):
                    return time.perf_counter() - started
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        raise SystemExit("orchestrion up was not ready within 120 s")
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds

    baseline = statistics.median(_command("-c", "pass") for _ in range(rounds))
    rows = {
        "version": statistics.median(
            _command("-m", "orchestrion", "version") for _ in range(rounds)
        ),
        "--help": statistics.median(_command("-m", "orchestrion", "--help") for _ in range(rounds)),
    }
    first, again = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="orchestrion-bench-startup-") as tmp:
            first.append(_up(Path(tmp)))
            again.append(_up(Path(tmp)))
    rows["up (new data dir)"] = statistics.median(first)
    rows["up (migrated)"] = statistics.median(again)

    print(f"{'start-up':<20}{'median s':>10}{'goal s':>8}{'x python -c pass':>18}")
    for name, seconds in rows.items():
        goal = GOALS.get(name)
        print(f"{name:<20}{seconds:>10.2f}{goal if goal else '':>8}{seconds / baseline:>18.1f}")
    print(f"{'python -c pass':<20}{baseline:>10.2f}")


if __name__ == "__main__":
    main()
