"""GraphQL tests: `up`'s app under a real uvicorn on loopback, a real GraphQL client.

``platform`` serves the embedded shape on its own copy of the SQLite template and counts
the requests that reach the workflows service (to prove the loaders batch).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.websockets import WebsocketsTransport
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrion.gateway.app import Gateway
from orchestrion.platform import create_embedded_app
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings
from tests.fixtures.databases import copy_template
from tests.fixtures.servers import serve


class Counting:
    """An ASGI app counting the HTTP requests it passes on, by path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


def find_gateway(app: Any) -> Gateway:
    """The gateway core under the middleware."""
    while not isinstance(app, Gateway):
        app = app.app
    return app


@dataclass
class Platform:
    """A running platform and ways to talk to it."""

    base: str
    http: httpx.AsyncClient
    workflows: Counting
    token: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.base}/graphql"

    def client(self, headers: dict[str, str] | None = None) -> Client:
        """A gql client over HTTP (aiohttp) with ``headers`` (the admin's by default)."""
        transport = AIOHTTPTransport(
            url=self.url, headers=self.headers if headers is None else headers
        )
        return Client(transport=transport, execute_timeout=30)

    def socket(self, payload: dict[str, Any] | None = None, **options: Any) -> Client:
        """A gql client over WebSocket, ``graphql-transport-ws``."""
        transport = WebsocketsTransport(
            url=self.url.replace("http", "ws", 1),
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
            init_payload={"Authorization": f"Bearer {self.token}"} if payload is None else payload,
            **options,
        )
        return Client(transport=transport, execute_timeout=30)

    async def query(
        self, document: str, variables: dict[str, Any] | None = None, **options: Any
    ) -> dict[str, Any]:
        """Run one operation as the admin; its data."""
        async with self.client(**options) as session:
            result: dict[str, Any] = await session.execute(
                GraphQLRequest(document, variable_values=variables)
            )
            return result


@contextlib.asynccontextmanager
async def running(directory: Path, template: Path, **overrides: Any) -> AsyncIterator[Platform]:
    """The embedded platform served on a free loopback port."""
    database = copy_template(template, directory / "data")
    settings = make_settings(directory, f"sqlite+aiosqlite:///{database}", **overrides)
    app = create_embedded_app(settings)
    gateway = find_gateway(app)
    upstream: Any = gateway.upstreams["workflows"]
    counting = Counting(upstream.app)
    upstream.app = counting
    async with serve(app) as address:
        base = f"http://{address}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            login = await http.post(
                "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            yield Platform(
                base=base, http=http, workflows=counting, token=token,
                headers={"Authorization": f"Bearer {token}"},
            )  # fmt: skip


@pytest.fixture
async def platform(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Platform]:
    """The platform with default settings."""
    async with running(tmp_path, sqlite_template) as started:
        yield started


@pytest.fixture
def start_platform(
    tmp_path: Path, sqlite_template: Path
) -> Callable[..., contextlib.AbstractAsyncContextManager[Platform]]:
    """Start a platform with settings of the test's choosing."""

    def start(**overrides: Any) -> contextlib.AbstractAsyncContextManager[Platform]:
        return running(tmp_path, sqlite_template, **overrides)

    return start


async def create_workflow(platform: Platform, definition: dict[str, Any]) -> dict[str, Any]:
    """A workflow through REST (the GraphQL mutation has its own test)."""
    response = await platform.http.post(
        "/api/v1/workflows", json=definition, headers=platform.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def run(platform: Platform, workflow_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """An execution through REST, waited for."""
    response = await platform.http.post(
        f"/api/v1/workflows/{workflow_id}/executions?wait=10",
        json={"inputs": inputs},
        headers=platform.headers,
    )
    assert response.status_code in (200, 202), response.text
    body: dict[str, Any] = response.json()
    return body
