"""Several instances of one shape as real processes: services, gateways and workers on
one PostgreSQL database (created for the test, dropped after), a broker and Redis."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.fixtures.databases import PG_HOST, PG_PORT, PG_USER, _admin, in_thread
from tests.fixtures.processes import free_port, run_command, spawn, stop_all, wait_ready

PASSWORD = "replicas-password-1"
ADMIN_EMAIL = "admin@orchestrion.local"


@dataclass
class Replicas:
    """The processes of one test, by name, and the settings they share."""

    home: Path
    settings: dict[str, str]
    processes: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def url(self, name: str) -> str:
        """The base URL of process ``name``."""
        return f"http://127.0.0.1:{self.ports[name]}"

    async def serve(self, name: str, service: str, **extra: str) -> str:
        """``orchestrion serve <service>`` as ``name``, ready; its URL."""
        self.ports[name] = free_port()
        port = str(self.ports[name])
        settings = {**self.settings, **extra}
        self.processes[name] = spawn(self.home, "serve", service, "--port", port, **settings)
        await asyncio.to_thread(wait_ready, self.url(name), self.processes[name], 120, "/health")
        return self.url(name)

    async def gateway(self, name: str, *options: str, **extra: str) -> str:
        """``orchestrion gateway <options>`` as ``name``, ready; its URL."""
        self.ports[name] = free_port()
        port = str(self.ports[name])
        settings = {**self.settings, **extra}
        self.processes[name] = spawn(self.home, "gateway", "--port", port, *options, **settings)
        await asyncio.to_thread(wait_ready, self.url(name), self.processes[name], 120)
        return self.url(name)

    def worker(self, name: str = "worker", **extra: str) -> None:
        """``orchestrion worker`` as ``name`` (it has no port to wait on)."""
        self.processes[name] = spawn(self.home, "worker", **{**self.settings, **extra})


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[Replicas]:
    """A fresh migrated database and the settings every process shares; every process
    started is stopped after (the ends of their logs printed), the database dropped."""
    name = f"orchestrion_rep_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(in_thread, asyncio.run, _admin(f'CREATE DATABASE "{name}"'))
    settings = {
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_DATABASE__URL": f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}",
        "ORCHESTRION_ENGINE__EMBEDDED_WORKERS": "false",
        "ORCHESTRION_ENGINE__POLL_SECONDS": "0.2",
        "ORCHESTRION_GATEWAY__RATE_LIMIT": "",
        "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }
    running = Replicas(tmp_path, settings)
    try:
        migrated = await asyncio.to_thread(run_command, tmp_path, "db", "upgrade", **settings)
        assert migrated.returncode == 0, migrated.stderr
        yield running
    finally:
        try:
            stop_all(running.processes.values())
        finally:
            in_thread(asyncio.run, _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def sign_in(http: httpx.AsyncClient) -> str:
    """Sign ``http`` in as the admin (its default headers); the access token."""
    login = await http.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
    assert login.status_code == 200, login.text
    token: str = login.json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return token
