"""Real servers for the notification tests: an SMTP server (aiosmtpd) and a webhook
receiver (uvicorn) on loopback ports, and the embedded platform sending to them."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import orchestrion.platform as platform_module
from orchestrion.kernel.bus import Bus
from orchestrion.platform import create_embedded_app
from orchestrion.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings
from tests.fixtures.databases import copy_template
from tests.fixtures.lifespan import in_process
from tests.fixtures.servers import free_port, serve

Headers = dict[str, str]
#: A failure detector, not a measure: a loaded machine gets room (returns once settled).
WAIT = 60.0
TERMINAL = ("delivered", "failed")


# --- SMTP --------------------------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler keeping every message it accepted."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted"


@dataclass
class SmtpServer:
    """An SMTP server on loopback and what it received."""

    url: str
    mailbox: Mailbox


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server (aiosmtpd) on a free loopback port."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(f"smtp://127.0.0.1:{port}", mailbox)
    finally:
        controller.stop()


# --- webhooks ------------------------------------------------------------------------------


@dataclass
class Hook:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver on loopback: answers each path's planned statuses in turn,
    then 200; ``hooks`` holds every request it got."""

    base: str = ""
    hooks: list[Hook] = field(default_factory=list)
    plans: dict[str, list[int]] = field(default_factory=dict)

    def url(self, path: str, *statuses: int) -> str:
        """The URL of ``path``, answering ``statuses`` first."""
        self.plans[path] = list(statuses)
        return f"{self.base}{path}"

    def at(self, path: str) -> list[Hook]:
        """The requests ``path`` got."""
        return [hook for hook in self.hooks if hook.path == path]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver under uvicorn in the test's loop."""
    state = Receiver()

    async def hook(request: Request) -> Response:
        path = request.url.path
        state.hooks.append(Hook(path, dict(request.headers), await request.body()))
        plan = state.plans.get(path) or []
        status = plan.pop(0) if plan else 200
        return Response(status_code=status)

    app = Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])])
    async with serve(app) as address:
        state.base = f"http://{address}"
        yield state


# --- the platform --------------------------------------------------------------------------


@dataclass
class Platform:
    """The embedded platform, a client of its gateway, and its notifications app."""

    http: httpx.AsyncClient
    admin: Headers
    services: dict[str, FastAPI]

    @property
    def bus(self) -> Bus:
        """The process's in-memory bus."""
        bus: Bus = self.services["notifications"].state.bus
        return bus


def platform_settings(
    tmp_path: Path, database_url: str, smtp_url: str | None, **notifications: Any
) -> Settings:
    """Fast retries, loopback webhooks allowed, email to ``smtp_url``."""
    values: dict[str, Any] = {
        "smtp_url": smtp_url,
        "webhook_allowlist": ["127.0.0.1"],
        "retry_initial_seconds": 0.05,
        "retry_max_seconds": 0.2,
        "max_attempts": 4,
        **notifications,
    }
    return make_settings(tmp_path, database_url, notifications=values)


@pytest.fixture
def monkeyed_factories(monkeypatch: pytest.MonkeyPatch) -> dict[str, FastAPI]:
    """The service apps the next embedded platform makes, by name."""
    made: dict[str, FastAPI] = {}
    original = platform_module.service_factories

    def factories() -> dict[str, Any]:
        found = original()

        def keep(name: str, factory: Any) -> Any:
            def make(settings: Settings) -> FastAPI:
                made[name] = factory(settings)
                return made[name]

            return make

        return {name: keep(name, factory) for name, factory in found.items()}

    monkeypatch.setattr(platform_module, "service_factories", factories)
    return made


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite; the PostgreSQL run of the core path overrides this (``test_postgres.py``)."""
    return f"sqlite+aiosqlite:///{copy_template(sqlite_template, tmp_path / 'data')}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, smtp_server: SmtpServer) -> Settings:
    """The platform's settings (a test module may override this fixture)."""
    return platform_settings(tmp_path, database_url, smtp_server.url)


@contextlib.asynccontextmanager
async def running(settings: Settings, services: dict[str, FastAPI]) -> AsyncIterator[Platform]:
    """The embedded platform with ``settings`` in-process, the admin logged in
    (``services``: what :func:`monkeyed_factories` fills)."""
    application = create_embedded_app(settings)
    async with in_process(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            tokens = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
            admin = {"Authorization": f"Bearer {tokens['access_token']}"}
            yield Platform(http, admin, services)


@pytest.fixture
async def platform(
    settings: Settings, monkeyed_factories: dict[str, FastAPI]
) -> AsyncIterator[Platform]:
    """The embedded platform in-process, the admin logged in."""
    async with running(settings, monkeyed_factories) as started:
        yield started


# --- helpers -------------------------------------------------------------------------------


async def send(platform: Platform, headers: Headers | None = None, **body: Any) -> str:
    """POST a notification; its id (the answer must be 202 queued)."""
    response = await platform.http.post(
        "/api/v1/notifications", json=body, headers=headers or platform.admin
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    return str(response.json()["id"])


async def settled(
    platform: Platform, notification_id: str, headers: Headers | None = None
) -> dict[str, Any]:
    """The notification once it is delivered or failed (fails the test after ``WAIT``)."""
    deadline = time.monotonic() + WAIT
    while True:
        response = await platform.http.get(
            f"/api/v1/notifications/{notification_id}", headers=headers or platform.admin
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in TERMINAL:
            return body
        assert time.monotonic() < deadline, f"still {body['status']}: {body}"
        await asyncio.sleep(0.05)


async def new_secret(platform: Platform) -> str:
    """A new webhook secret of the admin's tenant."""
    response = await platform.http.post(
        "/api/v1/notifications/webhook-secrets", headers=platform.admin
    )
    assert response.status_code == 201, response.text
    secret: str = response.json()["secret"]
    return secret
