"""The in-process backend of the embedded shape: one process, nothing shared."""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from typing import Any

from orchestrion.services.realtime.backends.base import (
    Deliver,
    Envelope,
    Member,
    Replay,
    replay_from,
    summarize,
)


class _Log:
    __slots__ = ("messages", "seq")

    def __init__(self, size: int) -> None:
        self.seq = 0
        self.messages: deque[tuple[int, Any]] = deque(maxlen=size)


class MemoryBackend:
    """Channel logs in a bounded LRU map; fan-out is a direct call."""

    def __init__(self, *, history_size: int, max_channels: int) -> None:
        self.history_size = history_size
        self.max_channels = max_channels
        self._logs: OrderedDict[str, _Log] = OrderedDict()
        self._listened: dict[str, int] = {}
        self._presence: dict[str, dict[str, Member]] = {}
        self._deliver: Deliver = lambda _envelope: None

    async def start(self, deliver: Deliver) -> None:
        """Route envelopes to ``deliver``."""
        self._deliver = deliver

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
            log = self._logs[key] = _Log(self.history_size)
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
            del self._logs[key]

    async def append(self, key: str, data: Any, *, origin: str | None, ref: Any) -> int:
        """Store under the next seq and deliver at once."""
        log = self._log(key)
        log.seq += 1
        if self.history_size:
            log.messages.append((log.seq, data))
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
