"""Where the response cache keeps its entries: this process (a byte-bounded LRU) or Redis.

An entry key (one caller, one path and query) holds the names of the request headers
the response varies on and one serialized response per combination of their values.
Every key is also listed under its path, so a write invalidates a path for every
caller and query at once, on every gateway when the store is Redis.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cachetools import LRUCache
from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Record:
    """What one key holds: the ``Vary`` header names and a response per variant."""

    vary: str
    variants: dict[str, bytes]


class CacheStore(Protocol):
    """The storage the cache needs."""

    async def get(self, key: str) -> Record | None:
        """The record at ``key``, if any."""

    async def put(
        self, path: str, key: str, *, vary: str, variant: str, value: bytes, ttl: float
    ) -> None:
        """Store one variant for ``ttl`` seconds (a changed ``vary`` drops the others)."""

    async def invalidate(self, paths: Sequence[str]) -> None:
        """Forget every key stored under these paths."""


@dataclass(slots=True)
class _Held:
    path: str
    record: Record
    expires: float
    size: int


class _Lru(LRUCache[str, _Held]):
    """An LRU that tells the path index what it evicts."""

    def __init__(self, max_bytes: int, index: dict[str, set[str]]) -> None:
        super().__init__(maxsize=max_bytes, getsizeof=lambda held: held.size)
        self.index = index

    def popitem(self) -> tuple[str, _Held]:
        key, held = super().popitem()
        _unlist(self.index, held.path, key)
        return key, held


def _unlist(index: dict[str, set[str]], path: str, key: str) -> None:
    keys = index.get(path)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[path]


class MemoryStore:
    """In this process, bounded by the bytes of the bodies it holds."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.index: dict[str, set[str]] = {}
        self.entries = _Lru(max(1, max_bytes), self.index)

    async def get(self, key: str) -> Record | None:
        """The record, unless it expired."""
        held = self.entries.get(key)
        if held is None:
            return None
        if held.expires <= time.monotonic():
            self.entries.pop(key, None)
            _unlist(self.index, held.path, key)
            return None
        return held.record

    async def put(
        self, path: str, key: str, *, vary: str, variant: str, value: bytes, ttl: float
    ) -> None:
        """Store a variant; the key lives as long as its longest-lived variant."""
        now = time.monotonic()
        held = self.entries.get(key)
        variants: dict[str, bytes] = {}
        expires = now + ttl
        if held is not None and held.record.vary == vary and held.expires > now:
            variants = dict(held.record.variants)
            expires = max(expires, held.expires)
        variants[variant] = value
        size = sum(len(v) for v in variants.values()) + len(key) + 64
        if size > self.max_bytes:
            return
        self.entries[key] = _Held(path, Record(vary, variants), expires, size)
        self.index.setdefault(path, set()).add(key)

    async def invalidate(self, paths: Sequence[str]) -> None:
        """Drop every key listed under ``paths``."""
        for path in paths:
            for key in self.index.pop(path, set()):
                self.entries.pop(key, None)


_PUT = """
if redis.call('HGET', KEYS[1], 'vary') ~= ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'vary', ARGV[1], ARGV[2], ARGV[3])
local ttl = tonumber(ARGV[4])
redis.call('SADD', KEYS[2], KEYS[1])
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
"""

_INVALIDATE = """
for _, index in ipairs(KEYS) do
  local keys = redis.call('SMEMBERS', index)
  for i = 1, #keys, 1000 do
    redis.call('DEL', unpack(keys, i, math.min(i + 999, #keys)))
  end
  redis.call('DEL', index)
end
"""


class RedisStore:
    """Shared by every gateway: one round trip per lookup, store or invalidation."""

    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._put = redis.register_script(_PUT)
        self._invalidate = redis.register_script(_INVALIDATE)

    def _index(self, path: str) -> str:
        return f"{self.prefix}path:{path}"

    async def get(self, key: str) -> Record | None:
        """``HGETALL`` of the key."""
        raw = await self.redis.hgetall(self.prefix + key)
        fields = {_text(k): v for k, v in raw.items()}
        vary = fields.pop("vary", None)
        if vary is None:
            return None
        return Record(
            _text(vary), {k: v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}
        )

    async def put(
        self, path: str, key: str, *, vary: str, variant: str, value: bytes, ttl: float
    ) -> None:
        """Store the variant and list the key under its path, atomically."""
        await self._put(
            keys=[self.prefix + key, self._index(path)],
            args=[vary, variant, value, max(1, int(ttl * 1000))],
        )

    async def invalidate(self, paths: Sequence[str]) -> None:
        """Delete the keys listed under ``paths``, atomically."""
        if paths:
            await self._invalidate(keys=[self._index(p) for p in paths], args=[])


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value
