"""Balancing strategies, outlier ejection, the circuit breaker and the retry budget."""

from __future__ import annotations

import itertools
import time
from collections import Counter

import pytest

from orchestrion.gateway.balancer import Instance, OutlierPolicy, Pool
from orchestrion.gateway.policies.breaker import BreakerPolicy, CircuitBreaker, RetryBudget


def _pool(strategy: str, weights: tuple[int, ...] = (1, 1, 1)) -> Pool:
    instances = [Instance(url=f"http://10.0.0.{n}:80", weight=w) for n, w in enumerate(weights)]
    return Pool(instances, strategy=strategy)  # type: ignore[arg-type]


def test_weighted_round_robin_interleaves_a_canary_split() -> None:
    pool = _pool("round_robin", (9, 1))
    picks = [pool.pick().url for _ in range(100)]  # type: ignore[union-attr]
    counts = Counter(picks)
    assert counts["http://10.0.0.0:80"] == 90
    assert counts["http://10.0.0.1:80"] == 10
    canary = [i for i, url in enumerate(picks) if url.endswith(".1:80")]
    assert all(b - a == 10 for a, b in itertools.pairwise(canary))  # spread, no burst


def test_least_outstanding_prefers_idle_instances() -> None:
    pool = _pool("least_outstanding", (1, 1))
    busy, idle = pool.instances
    busy.outstanding = 50
    assert all(pool.pick() is idle for _ in range(20))


def test_consistent_hash_keeps_callers_and_moves_few() -> None:
    pool = _pool("consistent_hash", (1, 1, 1, 1))
    keys = [f"user-{n}" for n in range(400)]
    before = {k: pool.pick(k) for k in keys}
    assert all(pool.pick(k) is before[k] for k in keys)
    gone = pool.instances[0]
    pool.replace([i for i in pool.instances if i is not gone])
    after = {k: pool.pick(k) for k in keys}
    moved = [k for k in keys if after[k] is not before[k]]
    assert all(before[k] is gone for k in moved)  # only the removed instance's callers move
    assert 0 < len(moved) < 200


def test_failures_eject_then_panic_mode_still_routes() -> None:
    pool = Pool(
        [Instance(url="http://a:1"), Instance(url="http://b:1")],
        outlier=OutlierPolicy(consecutive_failures=2, eject_seconds=30),
    )
    a, b = pool.instances
    pool.record(a, ok=False)
    pool.record(a, ok=False)
    assert all(pool.pick() is b for _ in range(5))
    pool.record(b, ok=False)
    pool.record(b, ok=False)
    assert pool.pick() in (a, b)  # everything ejected: try anyway rather than refuse
    b.draining = True
    assert pool.pick() is a  # drained instances are never picked, even in panic
    a.weight = 0
    assert pool.pick() is None


def test_replace_keeps_state_by_id_and_pinned_weights() -> None:
    pool = _pool("round_robin", (1, 1))
    first = pool.instances[0]
    first.draining = True
    first.weight, first.pinned_weight = 5, True
    pool.replace([Instance(url=first.url, weight=1), Instance(url="http://new:1")])
    assert pool.instances[0] is first
    assert first.draining
    assert first.weight == 5
    assert pool.find("http://new:1") is not None
    with pytest.raises(ValueError, match="unknown balancing"):
        Pool([], strategy="random")  # type: ignore[arg-type]


def test_breaker_opens_fails_fast_and_probes() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=3, open_seconds=0.2))
    for _ in range(2):
        assert breaker.allow()
        breaker.record(ok=False)
    breaker.record(ok=True)  # a success in between resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record(ok=False)
    assert breaker.state == "open"
    assert not breaker.allow()
    assert 0 < breaker.retry_after() <= 0.2
    time.sleep(0.25)
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()  # one probe at a time
    breaker.record(ok=False)
    assert breaker.state == "open"
    time.sleep(0.25)
    assert breaker.allow()
    breaker.record(ok=True)
    assert breaker.state == "closed"
    assert breaker.opened_count == 2


def test_retry_budget_bounds_retries_to_a_share_of_requests() -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=0.1, window_seconds=10)
    for _ in range(100):
        budget.request()
    granted = sum(budget.try_retry() for _ in range(100))
    assert granted == 21  # 20% of 100, plus the floor of one per window
