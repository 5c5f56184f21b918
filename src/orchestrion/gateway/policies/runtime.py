"""Builds the rate limiter and the response cache from settings, on one Redis client
(``redis.url``) or in this process, and closes that client with the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from orchestrion.gateway.policies.cache import ResponseCache
from orchestrion.gateway.policies.ratelimit import RateLimiter
from orchestrion.gateway.policies.shared import open_redis
from orchestrion.settings import Settings

Lifespan = Callable[[], AbstractAsyncContextManager[None]]


def open_policies(
    settings: Settings, lifespan: Lifespan | None
) -> tuple[RateLimiter, ResponseCache, Lifespan | None]:
    """The two policies, and ``lifespan`` extended to close their Redis client."""
    url = settings.redis.url
    if not url:
        return (
            RateLimiter.from_settings(settings, None),
            ResponseCache.from_settings(settings, None),
            lifespan,
        )
    redis = open_redis(url, timeout=settings.gateway.policy_timeout_seconds)

    @asynccontextmanager
    async def with_redis() -> AsyncIterator[None]:
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan():
                    yield
        finally:
            await redis.aclose()

    limiter = RateLimiter.from_settings(settings, redis)
    return limiter, ResponseCache.from_settings(settings, redis), with_redis
