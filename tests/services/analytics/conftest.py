"""The embedded platform for analytics tests, with a loopback LLM provider priced by
the test, and handles on the analytics service's bus and database."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrion.gateway.app import Gateway
from orchestrion.kernel.bus import Bus
from orchestrion.kernel.db.engine import Database
from orchestrion.platform import create_embedded_app
from orchestrion.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings
from tests.fixtures.lifespan import in_process
from tests.fixtures.llm import LlmServer, llm_server

__all__ = ["llm_server"]
Headers = dict[str, str]
PRICES = {"test-model": {"input": 2.0, "output": 10.0}}


@pytest.fixture
def llm_key() -> str:
    """This test's provider key."""
    return uuid.uuid4().hex


@pytest.fixture
def settings(tmp_path: Path, database_url: str, llm_server: LlmServer, llm_key: str) -> Settings:
    """Provider `oa` (OpenAI-compatible) on loopback, with prices."""
    providers = {"oa": {"kind": "openai", "base_url": llm_server.openai(llm_key), "api_key": "k"}}
    llm = {"providers": providers, "pricing": PRICES, "max_retries": 1}
    return make_settings(tmp_path, database_url, llm=llm)


@dataclass
class Platform:
    """The running platform: a gateway client and the analytics service's parts."""

    client: httpx.AsyncClient
    gateway: Gateway
    settings: Settings

    def service(self, name: str) -> Any:
        return self.gateway.upstreams[name].app  # type: ignore[attr-defined]

    @property
    def bus(self) -> Bus:
        bus: Bus = self.service("analytics").state.bus
        return bus

    @property
    def database(self) -> Database:
        database: Database = self.service("analytics").state.database
        return database

    def peer(self, name: str) -> httpx.AsyncClient:
        return self.gateway.upstreams[name].client  # type: ignore[attr-defined]


def _core(app: Any) -> Gateway:
    while not isinstance(app, Gateway):
        app = app.app
    return app


@pytest.fixture
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    """The embedded platform with every lifespan running."""
    application = create_embedded_app(settings)
    async with in_process(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Platform(http, _core(application), settings)


@pytest.fixture
async def admin(platform: Platform) -> Headers:
    """The bootstrap admin (a platform admin of the default tenant)."""
    tokens = await login(platform.client, ADMIN_EMAIL, ADMIN_PASSWORD)
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def eventually(
    probe: Callable[[], Any], check: Callable[[Any], bool], *, seconds: float = 10.0
) -> Any:
    """Call ``probe`` until ``check`` holds on its answer (fails after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        found = await probe()
        if check(found):
            return found
        assert time.monotonic() < deadline, f"not reached within {seconds} s: {found}"
        await asyncio.sleep(0.05)
