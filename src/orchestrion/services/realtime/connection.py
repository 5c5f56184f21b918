"""One client socket: its principal, its subscriptions and its bounded send queue.

Frames to the client go through :meth:`Connection.push` into a queue of at most
``max_queue`` frames, drained by a writer task that exists only while there is
something to send (an idle socket costs no task). A client that lets the queue fill
is a slow consumer: what is queued is dropped and the socket is closed with 4408, so
memory stays bounded whatever the client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from starlette.types import Send

from orchestrion.kernel.auth.principal import Principal
from orchestrion.services.realtime.backends.base import Member
from orchestrion.services.realtime.errors import CLOSE_SLOW_CONSUMER
from orchestrion.services.realtime.limits import TokenBucket

logger = logging.getLogger("orchestrion.realtime")


class _Close:
    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class Subscription:
    """A connection's interest in one channel, with its resume position.

    While ``pending`` is a list the subscription is replaying history: live frames wait
    there and are flushed by :meth:`go_live`, dropping any seq already sent.
    """

    __slots__ = ("channel", "connection", "key", "last", "pending")

    def __init__(self, connection: Connection, channel: str, key: str) -> None:
        self.connection = connection
        self.channel = channel
        self.key = key
        self.last = 0
        self.pending: list[tuple[int | None, str]] | None = []

    def offer(self, seq: int | None, text: str) -> None:
        """A live frame: buffered while replaying, dropped if its seq was sent already."""
        if self.pending is not None:
            if len(self.pending) >= self.connection.max_queue:
                self.connection.overflow()
                return
            self.pending.append((seq, text))
            return
        self.send(seq, text)

    def send(self, seq: int | None, text: str) -> None:
        """Queue ``text`` unless its seq is not past the last one sent."""
        if seq is not None:
            if seq <= self.last:
                return
            self.last = seq
        self.connection.push(text)

    def go_live(self) -> None:
        """Flush what arrived during replay, in order, without duplicates."""
        pending, self.pending = self.pending or [], None
        for seq, text in pending:
            self.send(seq, text)


class Connection:
    """An authenticated socket, as the service and the hub see it."""

    __slots__ = (
        "_close_timer",
        "_outbox",
        "_send",
        "_writer",
        "aborted",
        "bucket",
        "close_timeout",
        "closing",
        "expiry",
        "handler",
        "id",
        "max_queue",
        "presence",
        "principal",
        "rate_violations",
        "subscriptions",
    )

    def __init__(
        self,
        *,
        connection_id: str,
        principal: Principal,
        send: Send,
        max_queue: int,
        close_timeout: float,
    ) -> None:
        self.id = connection_id
        self.principal = principal
        self.max_queue = max_queue
        self.close_timeout = close_timeout
        self.subscriptions: dict[str, Subscription] = {}
        self.presence: dict[str, Member] = {}  # channel key → the state this socket set
        self.closing = False
        self.aborted = False
        # Set by the service when it registers the socket; refusals count toward 1008.
        self.bucket = TokenBucket(rate=1.0, burst=1)
        self.rate_violations = 0
        # Closes the socket (4401) when its credential expires; re-armed by a fresh one.
        self.expiry: asyncio.TimerHandle | None = None
        self.handler: asyncio.Task[Any] | None = asyncio.current_task()
        self._send = send
        self._outbox: deque[str | _Close] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    def push(self, text: str) -> None:
        """Queue a frame; a full queue makes this a slow consumer."""
        if self.closing:
            return
        if len(self._outbox) >= self.max_queue:
            self.overflow()
            return
        self._outbox.append(text)
        self._wake()

    def overflow(self) -> None:
        """The client cannot keep up: drop what is queued and close with 4408."""
        if not self.closing:
            logger.info("realtime connection %s is a slow consumer; closing", self.id)
            self.close(CLOSE_SLOW_CONSUMER, "slow consumer: send queue full", drop=True)

    def close(self, code: int, reason: str, *, drop: bool = False) -> None:
        """Close after the queued frames (or at once with ``drop``); abort if that stalls."""
        if self.closing:
            return
        self.closing = True
        if drop:
            self._outbox.clear()
        self._outbox.append(_Close(code, reason))
        self._wake()
        self._close_timer = asyncio.get_running_loop().call_later(self.close_timeout, self.abort)

    def abort(self) -> None:
        """Give up on a socket that cannot even take its close frame: end its handler."""
        if self._writer is not None or self._outbox:
            self.aborted = True
            if self.handler is not None:
                self.handler.cancel()

    def _wake(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._outbox:
                item = self._outbox.popleft()
                if isinstance(item, _Close):
                    self._outbox.clear()
                    await self._send(
                        {"type": "websocket.close", "code": item.code, "reason": item.reason}
                    )
                    return
                await self._send({"type": "websocket.send", "text": item})
        except Exception:
            # The peer went away mid-send: the handler sees the disconnect and cleans up.
            self._outbox.clear()
            self.closing = True
        finally:
            self._writer = None

    async def finish(self) -> None:
        """Stop writing (the handler is leaving)."""
        self.closing = True
        if self.expiry is not None:
            self.expiry.cancel()
        if self._close_timer is not None:
            self._close_timer.cancel()
        writer, self._writer = self._writer, None
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
