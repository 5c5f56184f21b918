"""Token buckets for client publishing: one per connection, one per user (per instance).

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second of ``clock``
(monotonic by default; tests pass their own). Each publish or presence frame takes one
token from its connection's bucket and its user's; a frame finding either empty is
refused with ``rate_limited`` and the seconds until a token is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    """``burst`` tokens refilled at ``rate`` per second."""

    __slots__ = ("_at", "_clock", "_tokens", "burst", "rate")

    def __init__(self, *, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def wait(self) -> float:
        """Seconds until a token is available (0: one is there now)."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate

    def take(self) -> None:
        """Spend a token (call after :meth:`wait` said one is there)."""
        self._tokens -= 1.0

    def full(self) -> bool:
        """Whether the bucket is back to ``burst`` (forgetting it loses nothing)."""
        self._refill()
        return self._tokens >= self.burst
