"""Automatic persisted queries (Apollo's APQ protocol).

A client sends ``extensions.persistedQuery.sha256Hash`` without the query; an unknown
hash answers the error ``PersistedQueryNotFound`` (code ``PERSISTED_QUERY_NOT_FOUND``),
the client sends hash and query once, and from then on the hash alone does. Queries are
kept in an LRU in this process and, with ``redis.url``, in Redis, so every gateway
replica knows a query one of them learnt. Redis trouble only costs a resend (fail open).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from cachetools import LRUCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrion.gateway.policies.shared import StorageGuard, open_redis

logger = logging.getLogger("orchestrion.graphql")
NOT_FOUND = "PersistedQueryNotFound"


class PersistedQueryError(Exception):
    """A persisted-query request the store cannot serve; ``code`` is the APQ one."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def digest(query: str) -> str:
    """The SHA-256 of a query, as APQ clients compute it (hex)."""
    return hashlib.sha256(query.encode()).hexdigest()


class PersistedQueries:
    """Queries by hash: an LRU here, Redis (when configured) behind it."""

    def __init__(
        self,
        *,
        size: int,
        ttl_seconds: int,
        redis_url: str | None = None,
        prefix: str = "orn:apq:",
        timeout: float = 0.5,
    ) -> None:
        self.local: LRUCache[str, str] = LRUCache(maxsize=size)
        self.ttl = ttl_seconds
        self.prefix = prefix
        self.redis: Redis | None = open_redis(redis_url, timeout=timeout) if redis_url else None
        self.guard = StorageGuard("persisted_queries")

    async def aclose(self) -> None:
        """Close the Redis client."""
        if self.redis is not None:
            await self.redis.aclose()

    async def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> str | None:
        """The query to run: ``query`` itself (stored when it comes with its hash), or
        the stored one for the hash; :class:`PersistedQueryError` when it cannot be."""
        persisted = (extensions or {}).get("persistedQuery")
        if not isinstance(persisted, dict):
            return query
        wanted = persisted.get("sha256Hash")
        if persisted.get("version", 1) != 1 or not isinstance(wanted, str):
            raise PersistedQueryError(
                "persistedQuery needs version 1 and a sha256Hash", "PERSISTED_QUERY_INVALID"
            )
        wanted = wanted.lower()
        if query:
            if digest(query) != wanted:
                raise PersistedQueryError(
                    "provided sha256Hash does not match the query", "PERSISTED_QUERY_HASH_MISMATCH"
                )
            await self._put(wanted, query)
            return query
        found = await self._get(wanted)
        if found is None:
            raise PersistedQueryError(NOT_FOUND, "PERSISTED_QUERY_NOT_FOUND")
        return found

    async def _get(self, key: str) -> str | None:
        found = self.local.get(key)
        if found is not None or self.redis is None or not self.guard.available():
            return found
        try:
            raw = await self.redis.get(self.prefix + key)
        except (RedisError, OSError, TimeoutError) as exc:
            self.guard.failed(exc)
            return None
        if raw is None:
            return None
        query = raw.decode() if isinstance(raw, bytes) else str(raw)
        if digest(query) != key:  # a shared store is trusted for nothing it can't prove
            return None
        self.local[key] = query
        return query

    async def _put(self, key: str, query: str) -> None:
        self.local[key] = query
        if self.redis is None or not self.guard.available():
            return
        try:
            await self.redis.set(self.prefix + key, query, ex=self.ttl)
        except (RedisError, OSError, TimeoutError) as exc:
            self.guard.failed(exc)
