"""The in-process backend of the embedded shape: one process, nothing shared.

History is bounded three ways: ``history_size`` messages per channel, ``max_channels``
channels, and per tenant (the part of a key before its last ``/``) at most
``max_tenant_messages`` messages and ``max_tenant_bytes`` bytes of JSON across all its
channels, the tenant's oldest message trimmed first.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict, deque
from typing import Any

from orchestrion.services.realtime.backends.base import (
    Deliver,
    Envelope,
    Member,
    Replay,
    Resume,
    replay_from,
    summarize,
)


class _Log:
    __slots__ = ("messages", "seq")

    def __init__(self) -> None:
        self.seq = 0
        self.messages: deque[tuple[int, Any]] = deque()


class _Tenant:
    """A tenant's stored messages, oldest first: (key, seq) → bytes."""

    __slots__ = ("bytes", "stored")

    def __init__(self) -> None:
        self.stored: dict[tuple[str, int], int] = {}
        self.bytes = 0


def tenant_of(key: str) -> str:
    """The tenant part of a channel key (channel names hold no ``/``)."""
    return key.rpartition("/")[0]


def _size(data: Any) -> int:
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


class MemoryBackend:
    """Channel logs in a bounded LRU map; fan-out is a direct call."""

    def __init__(
        self,
        *,
        history_size: int,
        max_channels: int,
        max_tenant_messages: int = 50_000,
        max_tenant_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.history_size = history_size
        self.max_channels = max_channels
        self.max_tenant_messages = max_tenant_messages
        self.max_tenant_bytes = max_tenant_bytes
        self._logs: OrderedDict[str, _Log] = OrderedDict()
        self._tenants: dict[str, _Tenant] = {}
        self._listened: dict[str, int] = {}
        self._presence: dict[str, dict[str, Member]] = {}
        self._deliver: Deliver = lambda _envelope: None

    async def start(self, deliver: Deliver, resume: Resume | None = None) -> None:
        """Route envelopes to ``deliver`` (a direct call is never interrupted)."""
        self._deliver = deliver

    async def ping(self) -> None:
        """Always answers: the store is this process."""

    async def close(self) -> None:
        """Nothing to release."""

    async def listen(self, key: str) -> None:
        """Pin ``key``'s log while someone listens (it is never evicted then)."""
        self._listened[key] = self._listened.get(key, 0) + 1

    async def unlisten(self, key: str) -> None:
        """Unpin ``key``'s log."""
        count = self._listened.get(key, 0) - 1
        if count > 0:
            self._listened[key] = count
        else:
            self._listened.pop(key, None)

    def _log(self, key: str) -> _Log:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _Log()
            self._evict()
        else:
            self._logs.move_to_end(key)
        return log

    def _evict(self) -> None:
        # Oldest idle channels go first; a channel someone listens to keeps its seq.
        excess = len(self._logs) - self.max_channels
        if excess <= 0:
            return
        for key in [k for k in self._logs if k not in self._listened][:excess]:
            log = self._logs.pop(key)
            while log.messages:
                self._forget(key, log.messages.popleft()[0])

    def _forget(self, key: str, seq: int) -> None:
        """Take a message that left a log out of its tenant's account."""
        tenant_id = tenant_of(key)
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            return
        tenant.bytes -= tenant.stored.pop((key, seq), 0)
        if not tenant.stored:
            del self._tenants[tenant_id]

    def _store(self, key: str, log: _Log, data: Any) -> None:
        log.messages.append((log.seq, data))
        tenant = self._tenants.setdefault(tenant_of(key), _Tenant())
        size = _size(data)
        tenant.stored[(key, log.seq)] = size
        tenant.bytes += size
        if len(log.messages) > self.history_size:
            self._forget(key, log.messages.popleft()[0])
        while tenant.stored and (
            len(tenant.stored) > self.max_tenant_messages or tenant.bytes > self.max_tenant_bytes
        ):
            # A channel's messages enter in seq order, so the tenant's oldest one is the
            # head of its channel's log.
            (old_key, old_seq), size = next(iter(tenant.stored.items()))
            del tenant.stored[(old_key, old_seq)]
            tenant.bytes -= size
            old = self._logs.get(old_key)
            if old is not None and old.messages and old.messages[0][0] == old_seq:
                old.messages.popleft()
        if not tenant.stored:
            self._tenants.pop(tenant_of(key), None)

    async def append(self, key: str, data: Any, *, origin: str | None, ref: Any) -> int:
        """Store under the next seq and deliver at once."""
        log = self._log(key)
        log.seq += 1
        if self.history_size:
            self._store(key, log, data)
        self._deliver(
            Envelope(key=key, kind="message", payload=data, seq=log.seq, origin=origin, ref=ref)
        )
        return log.seq

    async def broadcast(self, envelope: Envelope) -> None:
        """Deliver without storing."""
        self._deliver(envelope)

    async def latest(self, key: str) -> int:
        """The last seq of ``key``."""
        log = self._logs.get(key)
        return log.seq if log else 0

    async def history(self, key: str, after: int) -> Replay:
        """What the log still holds after ``after``."""
        log = self._logs.get(key)
        if log is None:
            return Replay(latest=0)
        stored = [(seq, data) for seq, data in log.messages if seq > after]
        return replay_from(stored, after=after, latest=log.seq)

    async def set_presence(self, key: str, member: Member) -> list[dict[str, str]]:
        """Record and summarize."""
        self._presence.setdefault(key, {})[member.connection_id] = member
        return await self.members(key)

    async def drop_presence(self, key: str, connection_id: str) -> list[dict[str, str]] | None:
        """Forget and summarize, or None when the connection had no presence there."""
        entries = self._presence.get(key)
        if not entries or entries.pop(connection_id, None) is None:
            return None
        if not entries:
            del self._presence[key]
        return await self.members(key)

    async def members(self, key: str) -> list[dict[str, str]]:
        """Everyone present on ``key`` (entries leave with their connection)."""
        entries = self._presence.get(key, {})
        return summarize(list(entries.values()), now=0.0, ttl=math.inf)

    async def refresh_presence(self, entries: list[tuple[str, Member]]) -> None:
        """Entries of one process never go stale."""
