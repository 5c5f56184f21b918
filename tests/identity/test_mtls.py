"""The distributed shape under mutual TLS: ``orchestrion certs dev`` makes the CA, the
services serve HTTPS requiring a client certificate, and the gateway (statically for
auth, through the registry's ``https://`` addresses for the others) and the services
among themselves (realtime asks auth for its keys) present theirs. A caller without a
certificate is refused by the TLS handshake itself."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis
from websockets.asyncio.client import connect

from tests.fixtures.databases import PG_HOST, PG_PORT, PG_USER, _admin, in_thread, server_missing
from tests.fixtures.processes import free_port, run_command, spawn, stop_all, wait_ready

pytestmark = pytest.mark.timeout(300)
REDIS_URL = "redis://127.0.0.1:6379/0"
PASSWORD = "mutual-tls-password-1"
SERVICES = ("auth", "workflows", "realtime")


def _wait_tls(url: str, process: subprocess.Popen[str], context: ssl.SSLContext) -> None:
    """Wait until ``url`` answers 200 over mutual TLS (fails if the process exits)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the process exited: {process.communicate()[0][-3000:]}")
        try:
            if httpx.get(url, verify=context, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"nothing answered at {url}")


@pytest.mark.postgres
async def test_services_require_client_certificates_and_the_gateway_presents_one(
    tmp_path: Path,
) -> None:
    try:
        client = redis.Redis.from_url(REDIS_URL)
        await client.ping()
        await client.aclose()
    except (OSError, redis.RedisError) as exc:
        server_missing("Redis at 127.0.0.1:6379", exc)
    made = await asyncio.to_thread(run_command, tmp_path, "certs", "dev", "--dir", "tls")
    assert made.returncode == 0, made.stderr
    tls = dict(line.removeprefix("export ").split("=", 1) for line in made.stdout.splitlines())
    assert set(tls) == {
        "ORCHESTRION_TLS__CA_FILE",
        "ORCHESTRION_TLS__CERT_FILE",
        "ORCHESTRION_TLS__KEY_FILE",
    }
    name = f"orchestrion_mtls_{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.to_thread(in_thread, asyncio.run, _admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        server_missing("PostgreSQL", exc)
    ports = {service: free_port() for service in ("gateway", *SERVICES)}
    settings = {
        **tls,
        "ORCHESTRION_ADMIN_PASSWORD": PASSWORD,
        "ORCHESTRION_DATABASE__URL": f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}",
        "ORCHESTRION_REDIS__URL": REDIS_URL,
        "ORCHESTRION_GATEWAY__REGISTRY_PREFIX": f"orn:test:{uuid.uuid4().hex[:8]}:",
        "ORCHESTRION_GATEWAY__RATE_LIMIT": "",
        "ORCHESTRION_ENGINE__POLL_SECONDS": "0.2",
        "ORCHESTRION_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }
    ca = tls["ORCHESTRION_TLS__CA_FILE"]
    with_certificate = ssl.create_default_context(cafile=ca)
    with_certificate.load_cert_chain(
        tls["ORCHESTRION_TLS__CERT_FILE"], tls["ORCHESTRION_TLS__KEY_FILE"]
    )
    processes: list[subprocess.Popen[str]] = []
    try:
        migrated = await asyncio.to_thread(run_command, tmp_path, "db", "upgrade", **settings)
        assert migrated.returncode == 0, migrated.stderr
        for service in SERVICES:
            port = str(ports[service])
            processes.append(spawn(tmp_path, "serve", service, "--port", port, **settings))
        for service, process in zip(SERVICES, processes, strict=True):
            url = f"https://127.0.0.1:{ports[service]}/health"
            await asyncio.to_thread(_wait_tls, url, process, with_certificate)
        gateway = f"http://127.0.0.1:{ports['gateway']}"
        auth_url = f"https://127.0.0.1:{ports['auth']}"
        processes.append(
            spawn(
                tmp_path,
                "gateway",
                "--port",
                str(ports["gateway"]),
                f"--upstream=auth={auth_url}",
                **settings,
            )
        )
        await asyncio.to_thread(wait_ready, gateway, processes[-1], 120)
        await _through_the_gateway(gateway, ports["gateway"])
        await asyncio.to_thread(_refused_without_certificate, auth_url, ca, with_certificate)
    finally:
        try:
            stop_all(processes, tail=2000)
        finally:
            in_thread(asyncio.run, _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _through_the_gateway(base: str, port: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        # The registry's instances arrive within a second or two of the gateway starting.
        deadline = time.monotonic() + 60
        while True:
            health = (await http.get("/health")).json()
            if set(SERVICES) <= set(health["services"]) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert health["status"] == "ok", health
        for service in SERVICES:
            urls = [i["url"] for i in health["services"][service]["gateway"]["instances"]]
            assert urls, service
            assert all(u.startswith("https://") for u in urls), (service, urls)

        login = await http.post(
            "/api/v1/auth/login", json={"email": "admin@orchestrion.local", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        definition = {
            "name": "over-mtls",
            "steps": [{"id": "double", "type": "transform", "with": {"v": "{{ inputs.x * 2 }}"}}],
            "outputs": {"result": "{{ steps.double.output.v }}"},
        }
        created = await http.post("/api/v1/workflows", json=definition, headers=auth)
        assert created.status_code == 201, created.text
        run = await http.post(
            f"/api/v1/workflows/{created.json()['id']}/executions?wait=30",
            json={"inputs": {"x": 21}},
            headers=auth,
        )
        assert run.status_code == 200, run.text
        assert run.json()["status"] == "succeeded", run.json()
        assert run.json()["outputs"] == {"result": 42}
    # A socket through the gateway to realtime (wss), which checks the token with auth
    # (https): both hops under mutual TLS.
    async with connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["bearer", token]) as ws:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert welcome["type"] == "welcome", welcome


def _refused_without_certificate(url: str, ca: str, with_certificate: ssl.SSLContext) -> None:
    # The same call with the certificate passes: the refusal is the missing certificate's.
    assert httpx.get(f"{url}/health", verify=with_certificate).status_code == 200
    # TLS 1.2: the handshake itself fails (no connection, let alone a request).
    tls12 = ssl.create_default_context(cafile=ca)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", verify=tls12, timeout=10)
    # TLS 1.3 checks the client's certificate after the client's side of the handshake:
    # the server then closes, before any HTTP answer.
    tls13 = ssl.create_default_context(cafile=ca)
    tls13.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", verify=tls13, timeout=10)
    # Nor does plain HTTP get an answer.
    with pytest.raises(httpx.TransportError):
        httpx.get(url.replace("https://", "http://") + "/health", timeout=10)
