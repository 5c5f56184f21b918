"""``/metrics`` behind ``ORCHESTRION_OBSERVABILITY__METRICS_TOKEN``: a bearer token or 401."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from orchestrion.platform import create_embedded_app
from tests.conftest import make_settings
from tests.fixtures.databases import copy_template
from tests.fixtures.lifespan import in_process

TOKEN = "scrape-token-0123456789"


async def _gateway(
    tmp_path: Path, template: Path, **observability: str
) -> AsyncIterator[httpx.AsyncClient]:
    url = f"sqlite+aiosqlite:///{copy_template(template, tmp_path / 'data')}"
    settings = make_settings(tmp_path, url, observability=observability)
    async with in_process(create_embedded_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture
async def guarded(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _gateway(tmp_path, sqlite_template, metrics_token=TOKEN):
        yield http


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "],
)
async def test_metrics_refuse_a_missing_or_wrong_token(
    guarded: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await guarded.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "ORCHESTRION_OBSERVABILITY__METRICS_TOKEN" in response.json()["detail"]
    assert "orchestrion_http_requests_total" not in response.text


async def test_metrics_answer_the_token(guarded: httpx.AsyncClient) -> None:
    response = await guarded.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert "orchestrion_http_requests_total" in response.text


async def test_metrics_are_open_without_a_token(tmp_path: Path, sqlite_template: Path) -> None:
    async for http in _gateway(tmp_path, sqlite_template):
        assert (await http.get("/metrics")).status_code == 200
