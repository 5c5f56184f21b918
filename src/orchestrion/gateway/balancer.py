"""Instances of a service and how the gateway picks one for a request.

A :class:`Pool` holds the instances of one service, whether listed statically
(``--upstream``, the YAML config) or found in the registry. Each instance carries
what the balancer and the health checks need: its weight, requests in flight, and
whether it is ejected (passive outlier detection: consecutive failures), failing its
active health check, or draining (an operator takes it out without cutting requests).

Strategies:

- ``round_robin``: smooth weighted round robin (nginx's), so a 9:1 canary split
  interleaves rather than bursts;
- ``least_outstanding``: the power of two random choices over requests in flight,
  weighted — cheap and close to the true least-loaded pick;
- ``consistent_hash``: a hash ring with virtual nodes keyed by the caller (principal,
  client IP or a header), so one caller keeps hitting the same instance while the set
  is stable and only 1/n of callers move when it changes.

When every instance is unavailable the pool falls back to the ones that are merely
ejected or failing checks (Envoy's "panic mode"): sending a request that may fail
beats refusing it when nothing is known to work, and it is how a recovered service is
noticed before the next health check.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Strategy = Literal["round_robin", "least_outstanding", "consistent_hash"]
STRATEGIES: tuple[Strategy, ...] = ("round_robin", "least_outstanding", "consistent_hash")
_VIRTUAL_NODES = 100


@dataclass(eq=False)
class Instance:
    """One process serving a service at ``url``."""

    url: str
    id: str = ""
    weight: int = 1
    version: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = "static"
    outstanding: int = 0
    draining: bool = False
    check_failed: bool = False
    consecutive_failures: int = 0
    ejected_until: float = 0.0
    ejections: int = 0
    current_weight: int = 0
    pinned_weight: bool = False

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if not self.id:
            # Short and path-safe, for the admin API's URLs; stable for the same URL.
            self.id = "i-" + hashlib.blake2b(self.url.encode(), digest_size=5).hexdigest()

    def available(self, now: float) -> bool:
        """Healthy, not ejected, not draining and with a positive weight."""
        return (
            not self.draining
            and not self.check_failed
            and self.weight > 0
            and self.ejected_until <= now
        )

    def describe(self, now: float) -> dict[str, object]:
        """The instance as the admin API and ``/health`` show it."""
        return {
            "id": self.id,
            "url": self.url,
            "weight": self.weight,
            "version": self.version,
            "source": self.source,
            "outstanding": self.outstanding,
            "draining": self.draining,
            "healthy": not self.check_failed,
            "ejected": self.ejected_until > now,
            "ejections": self.ejections,
            "metadata": self.metadata,
        }


@dataclass(frozen=True)
class OutlierPolicy:
    """Passive health: eject after ``consecutive_failures`` for ``eject_seconds`` (doubling)."""

    consecutive_failures: int = 3
    eject_seconds: float = 10.0
    max_eject_seconds: float = 120.0


class Pool:
    """The instances of one service and the strategy that picks among them."""

    def __init__(
        self,
        instances: Iterable[Instance] = (),
        *,
        strategy: Strategy = "round_robin",
        outlier: OutlierPolicy | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown balancing strategy {strategy!r}")
        self.strategy = strategy
        self.outlier = outlier or OutlierPolicy()
        self.instances: list[Instance] = []
        self._ring: list[tuple[int, Instance]] = []
        self._ring_keys: list[int] = []
        self.replace(instances)

    def replace(self, instances: Iterable[Instance]) -> None:
        """Set the instance list, keeping the state of instances already known (by id)."""
        known = {i.id: i for i in self.instances}
        merged: list[Instance] = []
        for new in instances:
            old = known.get(new.id)
            if old is not None:
                old.url, old.version, old.metadata = new.url, new.version, new.metadata
                if not old.pinned_weight:
                    old.weight = new.weight
                if new.source != "admin":
                    old.source = new.source
                merged.append(old)
            else:
                merged.append(new)
        self.instances = merged
        self._build_ring()

    def rebuild(self) -> None:
        """Recompute what depends on weights (after one changed)."""
        self._build_ring()

    def find(self, instance_id: str) -> Instance | None:
        """The instance with this id (or URL)."""
        for instance in self.instances:
            if instance_id in (instance.id, instance.url):
                return instance
        return None

    def pick(
        self, key: str | None = None, exclude: frozenset[str] = frozenset()
    ) -> Instance | None:
        """An instance for the next request, avoiding ``exclude`` (ids already tried)."""
        now = time.monotonic()
        candidates = [i for i in self.instances if i.id not in exclude and i.available(now)]
        if not candidates:
            # Panic mode: better a request that may fail than none at all. Drained or
            # zero-weight instances stay out: an operator took them out on purpose.
            candidates = [
                i for i in self.instances if i.id not in exclude and not i.draining and i.weight > 0
            ]
            if not candidates:
                return None
        if len(candidates) == 1:
            return candidates[0]
        if self.strategy == "consistent_hash" and key is not None:
            return self._by_hash(key, candidates)
        if self.strategy == "least_outstanding":
            first, second = random.sample(candidates, 2)
            # Compare outstanding/weight without division: a*w_b vs b*w_a.
            if first.outstanding * second.weight <= second.outstanding * first.weight:
                return first
            return second
        return _smooth_weighted(candidates)

    def record(self, instance: Instance, *, ok: bool) -> None:
        """Passive outlier detection: consecutive failures eject the instance for a while."""
        if ok:
            instance.consecutive_failures = 0
            return
        instance.consecutive_failures += 1
        if instance.consecutive_failures >= self.outlier.consecutive_failures:
            seconds = min(
                self.outlier.eject_seconds * (2 ** min(instance.ejections, 6)),
                self.outlier.max_eject_seconds,
            )
            instance.ejected_until = time.monotonic() + seconds
            instance.ejections += 1
            instance.consecutive_failures = 0

    def _build_ring(self) -> None:
        ring: list[tuple[int, Instance]] = []
        for instance in self.instances:
            for replica in range(_VIRTUAL_NODES * max(instance.weight, 1)):
                ring.append((_hash(f"{instance.id}#{replica}"), instance))
        ring.sort(key=lambda entry: entry[0])
        self._ring = ring
        self._ring_keys = [h for h, _ in ring]

    def _by_hash(self, key: str, candidates: list[Instance]) -> Instance:
        allowed = {id(i) for i in candidates}
        start = bisect.bisect(self._ring_keys, _hash(key))
        size = len(self._ring)
        for offset in range(size):
            instance = self._ring[(start + offset) % size][1]
            if id(instance) in allowed:
                return instance
        return candidates[0]


def _smooth_weighted(candidates: list[Instance]) -> Instance:
    total = 0
    best = candidates[0]
    for instance in candidates:
        instance.current_weight += instance.weight
        total += instance.weight
        if instance.current_weight > best.current_weight:
            best = instance
    best.current_weight -= total
    return best


def _hash(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")
