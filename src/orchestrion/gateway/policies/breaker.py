"""Circuit breaking and retry budgets, per upstream service.

A breaker counts failed requests (connection errors, timeouts, 502/503/504 once
retries are spent) over the requests it lets through. ``closed``: everything passes;
``failure_threshold`` consecutive failures open it. ``open``: calls are refused at once
(a fast 503 with ``Retry-After``) for ``open_seconds``. ``half_open``: up to
``half_open_requests`` probes go through; one success closes the breaker, a failure
opens it again.

A retry budget bounds retries to a fraction of recent requests (plus a small floor), so
that when a whole service struggles, retries cannot multiply its load (the "retry
storm"); the idea is Finagle's and Envoy's.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half_open"]
STATE_VALUES: dict[State, int] = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(frozen=True)
class BreakerPolicy:
    """When a breaker opens and how it probes."""

    failure_threshold: int = 5
    open_seconds: float = 5.0
    half_open_requests: int = 1


class CircuitBreaker:
    """The breaker of one upstream."""

    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        self.opened_count = 0

    @property
    def state(self) -> State:
        """The state now (an open breaker turns half-open once its time is up)."""
        if self._state == "open" and time.monotonic() - self._opened_at >= self.policy.open_seconds:
            self._state = "half_open"
            self._probes = 0
        return self._state

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through."""
        remaining = self.policy.open_seconds - (time.monotonic() - self._opened_at)
        return max(remaining, 0.0)

    def allow(self) -> bool:
        """Whether a call may go through now (a half-open breaker counts its probes)."""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False
        if self._probes >= self.policy.half_open_requests:
            return False
        self._probes += 1
        return True

    def record(self, *, ok: bool) -> None:
        """The outcome of a call that :meth:`allow` let through."""
        if ok:
            self._failures = 0
            if self._state == "half_open":
                self._state = "closed"
            return
        self._failures += 1
        if self._state == "half_open" or self._failures >= self.policy.failure_threshold:
            self._open()

    def release_probe(self) -> None:
        """A half-open probe ended without a verdict (the client went away)."""
        if self._state == "half_open" and self._probes > 0:
            self._probes -= 1

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = time.monotonic()
        self._failures = 0
        self.opened_count += 1


class RetryBudget:
    """Retries allowed: ``ratio`` of the requests of the last ``window_seconds``, plus
    ``min_per_second`` so that a quiet service can still retry."""

    def __init__(
        self, *, ratio: float = 0.2, min_per_second: float = 5.0, window_seconds: float = 10.0
    ) -> None:
        self.ratio = ratio
        self.min_per_window = min_per_second * window_seconds
        self.window = window_seconds
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def request(self) -> None:
        """Count a first attempt."""
        self._requests.append(time.monotonic())

    def try_retry(self) -> bool:
        """Take one retry from the budget, if any is left."""
        now = time.monotonic()
        for events in (self._requests, self._retries):
            while events and now - events[0] > self.window:
                events.popleft()
        if len(self._retries) >= self.min_per_window + self.ratio * len(self._requests):
            return False
        self._retries.append(now)
        return True
