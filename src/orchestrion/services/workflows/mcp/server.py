"""The platform as an MCP server (``POST /mcp``, streamable HTTP), started on first use.

The tools and resources are in :mod:`.tools`. The MCP SDK takes about a second to import,
so the server is made (and the SDK loaded) when the first authenticated request reaches
``/mcp``, not when the service starts. The SDK's session manager runs in an anyio task
group that must be left by the task that entered it, so one task, started with the app's
lifespan, waits for that first request, runs the manager, and stops it when the app stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from orchestrion.kernel.auth.identity import IDENTITY_HEADER, decode_identity
from orchestrion.kernel.errors import (
    OrchestrionError,
    ServiceUnavailable,
    Unauthenticated,
    problem_response,
)

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from orchestrion.engine import Engine
    from orchestrion.kernel.db.engine import Database
    from orchestrion.services.workflows.runtime import PeerCalls

logger = logging.getLogger(__name__)


class _Run:
    """One run of the server, made by the lifespan (an event binds the loop it waits in)."""

    def __init__(self) -> None:
        self.wanted = asyncio.Event()
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()


class McpEndpoint:
    """The ASGI endpoint at /mcp: refuses callers without an identity, then speaks MCP.

    ``make`` builds the SDK's session manager; :meth:`running` (the app's lifespan) owns it.
    """

    def __init__(self, make: Callable[[], StreamableHTTPSessionManager], secret: bytes) -> None:
        self.make = make
        self.secret = secret
        self.manager: StreamableHTTPSessionManager | None = None
        self._run: _Run | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the app runs: the server starts with the first request, stops on leaving."""
        run = self._run = _Run()
        task = asyncio.create_task(self._serve(run), name="mcp server")
        try:
            yield
        finally:
            run.stopping.set()
            run.wanted.set()
            await task
            self._run = None

    async def _serve(self, run: _Run) -> None:
        await run.wanted.wait()
        try:
            if not run.stopping.is_set():
                manager = self.make()
                async with manager.run():
                    self.manager = manager
                    run.ready.set()
                    await run.stopping.wait()
        except Exception:
            logger.exception("the MCP server stopped")
        finally:
            self.manager = None
            run.ready.set()

    async def _started(self) -> StreamableHTTPSessionManager:
        run = self._run
        if run is not None:
            run.wanted.set()
            await run.ready.wait()
        if self.manager is None:
            raise ServiceUnavailable("the MCP server is not running")
        return self.manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Defence in depth: the gateway only forwards authenticated callers."""
        value = Request(scope).headers.get(IDENTITY_HEADER)
        try:
            if not value or decode_identity(value, self.secret) is None:
                raise Unauthenticated("authentication required: send a bearer token or an API key")
            manager = await self._started()
        except OrchestrionError as error:
            response = problem_response(
                status=error.status_code,
                detail=error.detail,
                instance=scope["path"],
                request_id=scope.get("state", {}).get("request_id"),
                title=error.default_title(),
                type_uri=error.type_uri,
            )
            await response(scope, receive, send)
            return
        await manager.handle_request(scope, receive, send)


def create_mcp_endpoint(
    *,
    engine: Engine,
    database: Database,
    secret: bytes,
    wait_seconds: float,
    peers: PeerCalls | None = None,
) -> McpEndpoint:
    """The ASGI endpoint for /mcp (enter its ``running()`` in the app's lifespan); with
    ``peers``, the templates service's templates are tools too."""

    def make() -> StreamableHTTPSessionManager:
        from orchestrion.services.workflows.mcp.tools import create_session_manager

        return create_session_manager(
            engine=engine, database=database, secret=secret, wait_seconds=wait_seconds, peers=peers
        )

    return McpEndpoint(make, secret)
