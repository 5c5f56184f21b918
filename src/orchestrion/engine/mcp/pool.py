"""Pooled MCP client sessions, one per server configuration.

Opening a session costs a process spawn (stdio) or a handshake (HTTP), so sessions are
kept and shared by every call to the same server: JSON-RPC multiplexes concurrent
requests on one session. The SDK's client lives in anyio task groups that must be left by
the task that entered them, so each session is owned by a task of its own that enters
the client, waits to be told to close, and leaves it.

A call that fails on the transport discards the session; a reused session that turns out
dead (a restarted server, an expired session id) is replaced once and the call sent again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from orchestrion.kernel.mcp_config import McpServerConfig

if TYPE_CHECKING:
    from mcp import Client
    from mcp_types import CallToolResult, Tool

    from orchestrion.engine.netguard import NetGuard

logger = logging.getLogger("orchestrion.mcp")
T = TypeVar("T")
_MAX_TOOL_PAGES = 20
_CLOSE_SECONDS = 10.0
#: JSON-RPC's "Internal error" (the SDK's ``mcp_types.INTERNAL_ERROR``).
_INTERNAL_ERROR = -32603


class McpUnavailable(Exception):
    """The server cannot be reached or the connection broke (worth retrying)."""


class McpTimeout(Exception):
    """The server did not answer within the call's timeout."""


class McpCallError(Exception):
    """The server answered the request with a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"MCP error {code}: {message}")
        self.code = code
        self.retryable = code == _INTERNAL_ERROR


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _reason(exc: BaseException) -> str:
    leaf = _leaf(exc)
    return f"{type(leaf).__name__}: {leaf}" if str(leaf) else type(leaf).__name__


class _Session:
    """One connected client, owned by its own task (``guard``: a tenant's server)."""

    def __init__(self, config: McpServerConfig, guard: NetGuard | None = None) -> None:
        self.config = config
        self.guard = guard
        self.client: Client | None = None
        self.last_used = time.monotonic()
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        return self.client is not None and not self._closing.is_set()

    async def open(self, seconds: float) -> None:
        self._task = asyncio.create_task(self._run(), name=f"mcp {self.config.describe()}")
        try:
            async with asyncio.timeout(seconds):
                await self._ready.wait()
        except TimeoutError:
            await self.close()
            raise McpUnavailable(
                f"{self.config.describe()} did not complete the MCP handshake in {seconds:g}s"
            ) from None
        if self.client is None:
            reason = _reason(self._error) if self._error else "the connection closed"
            raise McpUnavailable(f"cannot connect to {self.config.describe()}: {reason}")

    async def _run(self) -> None:
        try:
            # The SDK loads with the first session (see sdk.py).
            from orchestrion.engine.mcp import sdk

            async with AsyncExitStack() as stack:
                self.client = await sdk.connect(self.config, stack, self.guard)
                self._ready.set()
                await self._closing.wait()
        except Exception as exc:
            self._error = exc
            logger.info("MCP session to %s ended: %s", self.config.describe(), _reason(exc))
        finally:
            self.client = None
            self._ready.set()

    async def close(self) -> None:
        self._closing.set()
        task = self._task
        if task is None or task.done():
            return
        if not self._ready.is_set():
            # Still connecting (a handshake that timed out): there is no session to end
            # gracefully, and the attempt would not see ``_closing`` until it connected.
            task.cancel()
        await asyncio.wait({task}, timeout=_CLOSE_SECONDS)
        if not task.done():
            task.cancel()
            await asyncio.wait({task})


class McpPool:
    """Shared sessions keyed by server configuration; :meth:`aclose` ends them all."""

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        max_sessions: int = 64,
        idle_seconds: float = 300.0,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self._sessions: dict[str, _Session] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False
        self._guard: NetGuard | None = None
        self._trusted: frozenset[str] = frozenset()

    def guard_all_but(self, trusted: Iterable[McpServerConfig], guard: NetGuard) -> None:
        """Connect to URL servers other than ``trusted`` ones only where ``guard`` allows."""
        self._trusted = frozenset(config.key() for config in trusted)
        self._guard = guard

    def __len__(self) -> int:
        return sum(1 for s in self._sessions.values() if s.usable)

    async def call_tool(
        self,
        config: McpServerConfig,
        tool: str,
        arguments: dict[str, Any] | None,
        *,
        seconds: float,
    ) -> CallToolResult:
        """Call ``tool``, waiting ``seconds`` for the answer.

        Raises McpUnavailable, McpTimeout or McpCallError.
        """

        async def call(client: Client) -> CallToolResult:
            return await client.call_tool(tool, arguments, read_timeout_seconds=seconds)

        return await self._with_session(config, call, seconds)

    async def list_tools(self, config: McpServerConfig, *, seconds: float) -> list[Tool]:
        """Every tool the server offers (all pages)."""

        async def listing(client: Client) -> list[Tool]:
            tools: list[Tool] = []
            cursor: str | None = None
            for _ in range(_MAX_TOOL_PAGES):
                page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
            return tools

        return await self._with_session(config, listing, seconds)

    async def _with_session(
        self, config: McpServerConfig, use: Callable[[Client], Awaitable[T]], seconds: float
    ) -> T:
        from orchestrion.engine.mcp.sdk import CONNECTION_CLOSED, REQUEST_TIMEOUT, MCPError

        for attempt in range(2):
            async with self._session(config) as (session, fresh):
                client = session.client
                try:
                    if client is None:
                        raise McpUnavailable(f"the session to {config.describe()} closed")
                    # The SDK's read timeout answers first; this bounds anything else.
                    async with asyncio.timeout(seconds + self.connect_timeout):
                        return await use(client)
                except MCPError as exc:
                    if exc.code == REQUEST_TIMEOUT:
                        raise McpTimeout(
                            f"{config.describe()} did not answer within {seconds:g}s"
                        ) from None
                    if exc.code != CONNECTION_CLOSED:
                        raise McpCallError(exc.code, exc.message) from None
                    failure: BaseException = exc
                except TimeoutError:
                    await self._discard(config.key(), session)
                    raise McpTimeout(
                        f"{config.describe()} did not answer within {seconds:g}s"
                    ) from None
                except McpUnavailable as exc:
                    failure = exc
                except Exception as exc:
                    failure = exc
                await self._discard(config.key(), session)
                if fresh or attempt:
                    raise McpUnavailable(
                        f"{config.describe()} failed: {_reason(failure)}"
                    ) from None
                logger.info("reconnecting to %s: %s", config.describe(), _reason(failure))
        raise AssertionError("unreachable")  # pragma: no cover

    @asynccontextmanager
    async def _session(self, config: McpServerConfig) -> AsyncIterator[tuple[_Session, bool]]:
        if self._closed:
            raise McpUnavailable("the MCP client pool is closed")
        key = config.key()
        session = self._sessions.get(key)
        fresh = False
        if session is None or not session.usable:
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock:
                session = self._sessions.get(key)
                if session is None or not session.usable:
                    if session is not None:
                        await self._discard(key, session)
                    await self._make_room()
                    guard = None if key in self._trusted else self._guard
                    session = _Session(config, guard)
                    await session.open(self.connect_timeout)
                    self._sessions[key] = session
                    fresh = True
        session.last_used = time.monotonic()
        try:
            yield session, fresh
        finally:
            session.last_used = time.monotonic()

    async def _make_room(self) -> None:
        """Close idle sessions, and the least recently used ones past ``max_sessions``."""
        now = time.monotonic()
        by_age = sorted(self._sessions.items(), key=lambda item: item[1].last_used)
        excess = len(by_age) - self.max_sessions + 1
        for position, (key, session) in enumerate(by_age):
            if position < excess or now - session.last_used > self.idle_seconds:
                await self._discard(key, session)

    async def _discard(self, key: str, session: _Session) -> None:
        if self._sessions.get(key) is session:
            del self._sessions[key]
        await session.close()

    async def aclose(self) -> None:
        """Close every session (stdio servers are stopped)."""
        self._closed = True
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
