"""Idempotent consumers: which event ids a group has handled, or is handling now.

Brokers deliver at least once, and producers may publish the same event twice, so a
group claims an event id before calling its handler. A claim is one of three states:

- ``NEW``: nobody handled it; the caller now holds a lease on it and must
  ``complete`` (handled) or ``release`` (failed for good, or stopped) it.
- ``BUSY``: another member holds the lease right now; wait and claim again.
- ``DONE``: handled already; acknowledge the delivery without calling the handler.

A lease, not a permanent mark, guards handling in progress: a member that dies
mid-handler stops renewing it, so the redelivered event is handled by another member
once the lease runs out instead of being skipped forever.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from typing import Any, Protocol, runtime_checkable

from orchestrion.kernel.bus.batching import Coalescer

_DONE = b"done"


class Claim(enum.Enum):
    """The answer to :meth:`Deduplicator.claim`."""

    NEW = "new"
    BUSY = "busy"
    DONE = "done"


@runtime_checkable
class Deduplicator(Protocol):
    """Seen event ids per consumer group."""

    async def claim(self, group: str, event_id: str, *, owner: str, lease: float) -> Claim:
        """Take (or renew, for the same ``owner``) a lease of ``lease`` seconds on an id."""
        ...

    async def complete(self, group: str, event_id: str) -> None:
        """Record the id as handled, for the deduplicator's retention."""
        ...

    async def release(self, group: str, event_id: str, *, owner: str) -> None:
        """Give up ``owner``'s lease without marking the id handled."""
        ...


class MemoryDeduplicator:
    """Per-process, bounded: the oldest ids are forgotten past ``max_entries``.

    Enough for the embedded shape and for members that share one process; members in
    several processes need a shared store such as :class:`RedisDeduplicator`.
    """

    def __init__(self, *, max_entries: int = 100_000, ttl: float = 24 * 3600.0) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        # (group, id) -> (owner or None when done, expiry on the monotonic clock)
        self._entries: OrderedDict[tuple[str, str], tuple[str | None, float]] = OrderedDict()

    def _live(self, key: tuple[str, str], now: float) -> tuple[str | None, float] | None:
        entry = self._entries.get(key)
        if entry is not None and entry[1] <= now:
            del self._entries[key]
            return None
        return entry

    def _put(self, key: tuple[str, str], owner: str | None, expires: float) -> None:
        self._entries[key] = (owner, expires)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def claim(self, group: str, event_id: str, *, owner: str, lease: float) -> Claim:
        """See :meth:`Deduplicator.claim`."""
        now = time.monotonic()
        key = (group, event_id)
        entry = self._live(key, now)
        if entry is None or entry[0] == owner:
            self._put(key, owner, now + lease)
            return Claim.NEW
        return Claim.DONE if entry[0] is None else Claim.BUSY

    async def complete(self, group: str, event_id: str) -> None:
        """See :meth:`Deduplicator.complete`."""
        self._put((group, event_id), None, time.monotonic() + self.ttl)

    async def release(self, group: str, event_id: str, *, owner: str) -> None:
        """See :meth:`Deduplicator.release`."""
        key = (group, event_id)
        entry = self._entries.get(key)
        if entry is not None and entry[0] == owner:
            del self._entries[key]


class RedisDeduplicator:
    """Shared by every process: one key per (group, id), ``SET NX`` with a TTL.

    ``client`` is a ``redis.asyncio.Redis``; keys expire by themselves, so the store
    stays bounded by the event rate times ``ttl``. Claims made at the same moment (a
    fetched batch's handlers starting together) go to Redis in one pipeline, and so do
    completions; each caller still gets its own answer.
    """

    def __init__(
        self, client: Any, *, prefix: str = "orchestrion:bus:dedup:", ttl: float = 24 * 3600.0
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self._claims: Coalescer[tuple[str, str, int], Any] = Coalescer(self._claim_many)
        self._completions: Coalescer[str, Any] = Coalescer(self._complete_many)

    def _key(self, group: str, event_id: str) -> str:
        return f"{self.prefix}{group}:{event_id}"

    async def claim(self, group: str, event_id: str, *, owner: str, lease: float) -> Claim:
        """See :meth:`Deduplicator.claim`."""
        key = self._key(group, event_id)
        lease_ms = max(1, int(lease * 1000))
        if await self._claims.submit((key, owner, lease_ms)):
            return Claim.NEW
        current = _as_bytes(await self.client.get(key))
        if current is None:
            # Expired between the two calls: try once more rather than loop.
            return (
                Claim.NEW if await self.client.set(key, owner, nx=True, px=lease_ms) else Claim.BUSY
            )
        if current == _DONE:
            return Claim.DONE
        if current == owner.encode():
            await self.client.pexpire(key, lease_ms)
            return Claim.NEW
        return Claim.BUSY

    async def complete(self, group: str, event_id: str) -> None:
        """See :meth:`Deduplicator.complete`."""
        await self._completions.submit(self._key(group, event_id))

    async def _claim_many(self, claims: list[tuple[str, str, int]]) -> list[Any]:
        """``SET key owner NX PX lease`` for each claim in one pipeline: taken or not."""
        pipe = self.client.pipeline(transaction=False)
        for key, owner, lease_ms in claims:
            pipe.set(key, owner, nx=True, px=lease_ms)
        outcomes: list[Any] = await pipe.execute(raise_on_error=False)
        return outcomes

    async def _complete_many(self, keys: list[str]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, _DONE, px=int(self.ttl * 1000))
        outcomes: list[Any] = await pipe.execute(raise_on_error=False)
        return outcomes

    async def release(self, group: str, event_id: str, *, owner: str) -> None:
        """See :meth:`Deduplicator.release`."""
        key = self._key(group, event_id)
        if _as_bytes(await self.client.get(key)) == owner.encode():
            await self.client.delete(key)


def _as_bytes(value: bytes | str | None) -> bytes | None:
    # Works with clients made with or without ``decode_responses``.
    return value.encode() if isinstance(value, str) else value
