"""Login throttling: failed attempts counted per account and per address.

A moving window (the ``limits`` library) counts failures only, so a user who types
the right password is never slowed by their own earlier success. Either counter
reaching its limit refuses further attempts, correct or not, until the window
frees a slot; the answer says when in ``Retry-After``.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from orchestrion.services.auth.errors import LoginThrottled


class LoginThrottle:
    """Counts failed logins per email and per IP."""

    def __init__(
        self, *, max_attempts: int, window_seconds: int, storage: Storage | None = None
    ) -> None:
        self.item = RateLimitItemPerSecond(max_attempts, window_seconds)
        self.limiter = MovingWindowRateLimiter(storage or MemoryStorage())

    @staticmethod
    def _keys(email: str, ip: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("login-email", email.lower()), ("login-ip", ip)

    async def check(self, *, email: str, ip: str) -> None:
        """Raise 429 with ``Retry-After`` when either counter is exhausted."""
        for key in self._keys(email, ip):
            if not await self.limiter.test(self.item, *key):
                stats = await self.limiter.get_window_stats(self.item, *key)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                raise LoginThrottled(
                    "too many failed logins; try again later",
                    headers={"Retry-After": str(wait)},
                )

    async def failed(self, *, email: str, ip: str) -> None:
        """Count one failed attempt against the account and the address."""
        for key in self._keys(email, ip):
            await self.limiter.hit(self.item, *key)

    async def reset(self) -> None:
        """Forget every counter."""
        await self.limiter.storage.reset()
