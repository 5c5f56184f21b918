"""Crash the platform mid-run, again and again: every execution still finishes, and
every step (and iteration) is recorded as completed exactly once.

Embedded: SIGKILL the whole ``orchestrion up`` process (SQLite) and start it again.
Distributed: an API process and two ``orchestrion worker`` processes on PostgreSQL;
SIGKILL one worker at a time and start a new one. Leases are short so the tasks of a
killed process are taken over quickly.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.databases import PG_HOST, PG_PORT, PG_USER, _admin, in_thread
from tests.fixtures.processes import free_port, kill, spawn, start_up, stop, stop_all, wait_ready
from tests.fixtures.upstream import Upstream

#: Crashes per test: each restart of a process costs seconds, so `make test` runs three
#: and `make test-long` a longer soak (ORCHESTRION_CHAOS_ROUNDS sets any number).
ROUNDS = int(os.environ.get("ORCHESTRION_CHAOS_ROUNDS", "3"))
EXECUTIONS = 12
PASSWORD = "chaos-password-1"
SETTINGS = {
    "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
    "ORCHESTRION_ENGINE__LEASE_SECONDS": "1.5",
    "ORCHESTRION_ENGINE__POLL_SECONDS": "0.2",
    "ORCHESTRION_ENGINE__HTTP_ALLOWLIST": "127.0.0.1",
    "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
}


def _definition(upstream: Upstream) -> dict[str, Any]:
    slow = upstream.url + "/slow/{{ execution.id }}?seconds=0.05"
    chain = [
        {
            "id": f"s{i}",
            "type": "http",
            "with": {"url": slow},
            **({"needs": [f"s{i - 1}"]} if i else {}),
        }
        for i in range(5)
    ]
    fan = {
        "id": "fan",
        "type": "http",
        "needs": ["s4"],
        "for_each": "inputs.items",
        "concurrency": 2,
        "with": {"url": slow},
    }
    join = {
        "id": "join",
        "type": "transform",
        "needs": ["fan"],
        "with": {"n": "{{ steps.fan.output | length }}"},
    }
    return {
        "name": "chaos",
        "steps": [*chain, fan, join],
        "outputs": {"n": "{{ steps.join.output.n }}"},
    }


def _client(base: str) -> httpx.Client:
    tokens = httpx.post(
        f"{base}/api/v1/auth/login",
        json={"email": "admin@orchestrion.local", "password": PASSWORD},
        timeout=10,
    ).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    return httpx.Client(base_url=base, timeout=10, headers=headers)


def _start_executions(client: httpx.Client, upstream: Upstream) -> list[str]:
    workflow = client.post("/api/v1/workflows", json=_definition(upstream))
    assert workflow.status_code == 201, workflow.text
    ids = []
    for _ in range(EXECUTIONS):
        started = client.post(
            f"/api/v1/workflows/{workflow.json()['id']}/executions",
            json={"inputs": {"items": [1, 2, 3]}},
        )
        assert started.status_code in (200, 202), started.text
        ids.append(started.json()["id"])
    return ids


def _check_exactly_once(client: httpx.Client, ids: list[str], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for execution_id in list(pending):
            status = client.get(f"/api/v1/executions/{execution_id}").json()["status"]
            if status in ("succeeded", "failed", "cancelled"):
                pending.discard(execution_id)
        time.sleep(0.2)
    assert not pending, f"{len(pending)} executions never finished"
    for execution_id in ids:
        execution = client.get(f"/api/v1/executions/{execution_id}").json()
        assert execution["status"] == "succeeded", execution
        assert execution["outputs"] == {"n": 3}
        log = client.get(
            f"/api/v1/executions/{execution_id}/events", params={"limit": 1000}
        ).json()["data"]
        assert [e["seq"] for e in log] == list(range(1, len(log) + 1))  # gap-free, ordered
        succeeded = Counter(e["step_id"] for e in log if e["type"] == "step.succeeded")
        assert succeeded == dict.fromkeys(["s0", "s1", "s2", "s3", "s4", "fan", "join"], 1), (
            succeeded
        )
        iterations = Counter(
            e["data"]["index"] for e in log if e["type"] == "step.iteration_succeeded"
        )
        assert iterations == {0: 1, 1: 1, 2: 1}, iterations
        assert sum(e["type"] == "execution.succeeded" for e in log) == 1


# Several process restarts on a loaded 2-core machine: more than the default 120 s.
@pytest.mark.timeout(480)
def test_embedded_process_killed_mid_run(tmp_path: Path, upstream: Upstream) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_up(tmp_path, port, **SETTINGS)
    try:
        wait_ready(base, process)
        with _client(base) as client:
            ids = _start_executions(client, upstream)
        for _ in range(ROUNDS):
            time.sleep(random.uniform(0.05, 0.4))
            kill(process)
            process = start_up(tmp_path, port, **SETTINGS)
            wait_ready(base, process)
        with _client(base) as client:
            _check_exactly_once(client, ids)
    finally:
        if process.poll() is None:
            stop(process)


@pytest.mark.postgres
@pytest.mark.timeout(480)
def test_distributed_worker_killed_mid_run(
    tmp_path: Path, upstream: Upstream, postgres_url: str
) -> None:
    name = f"orchestrion_chaos_{uuid.uuid4().hex[:8]}"
    in_thread(asyncio.run, _admin(f'CREATE DATABASE "{name}"'))
    settings = {
        **SETTINGS,
        "ORCHESTRION_DATABASE__URL": f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}",
        "ORCHESTRION_ENGINE__EMBEDDED_WORKERS": "false",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = start_up(tmp_path, port, **settings)
    workers: list[subprocess.Popen[str]] = []
    try:
        wait_ready(base, api)
        workers = [spawn(tmp_path, "worker", "--concurrency", "8", **settings) for _ in range(2)]
        with _client(base) as client:
            ids = _start_executions(client, upstream)
            for round_number in range(ROUNDS):
                time.sleep(random.uniform(0.1, 0.4))
                victim = round_number % 2
                kill(workers[victim])
                workers[victim] = spawn(tmp_path, "worker", "--concurrency", "8", **settings)
            _check_exactly_once(client, ids)
    finally:
        try:
            stop_all([api, *workers])
        finally:
            in_thread(asyncio.run, _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
