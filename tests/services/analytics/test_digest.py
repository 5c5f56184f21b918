"""Percentiles: exact (linear interpolation) up to the limit, a DDSketch beyond, within
its relative accuracy, and equal to what the ddsketch package answers."""

from __future__ import annotations

import random

import pytest
from ddsketch import DDSketch

from orchestrion.services.analytics.digest import (
    RELATIVE_ACCURACY,
    bin_of,
    count_above,
    exact_percentile,
    percentiles,
)


def _bins(values: list[float]) -> dict[int, int]:
    bins: dict[int, int] = {}
    for value in values:
        bins[bin_of(value)] = bins.get(bin_of(value), 0) + 1
    return bins


def test_exact_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    random.Random(7).shuffle(values)
    assert percentiles(values=values) == {"p50": 50.5, "p95": 95.05, "p99": 99.01}
    assert percentiles(values=[42.0]) == {"p50": 42.0, "p95": 42.0, "p99": 42.0}
    assert percentiles(values=[]) == {"p50": None, "p95": None, "p99": None}
    assert exact_percentile([10.0, 20.0], 50) == 15.0
    assert exact_percentile([0.0, 10.0, 20.0, 30.0], 95) == pytest.approx(28.5)


def test_exact_percentiles_match_the_closest_ranks_definition_on_skewed_data() -> None:
    values = [1.0] * 97 + [1000.0, 2000.0, 3000.0]
    found = percentiles(values=values)
    # rank 0.95 * 99 = 94.05 -> between two 1.0s; rank 0.99 * 99 = 98.01 -> 2000..3000
    assert found["p95"] == 1.0
    assert found["p99"] == 2010.0
    assert found["p50"] == 1.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sketch_is_within_its_relative_accuracy_and_agrees_with_ddsketch(seed: int) -> None:
    rng = random.Random(seed)
    # Heavy-tailed, spanning six orders of magnitude, with some zeros.
    values = [rng.lognormvariate(4, 2) for _ in range(50_000)] + [0.0] * 100
    ordered = sorted(values)
    reference = DDSketch(RELATIVE_ACCURACY)
    for value in values:
        reference.add(value)
    sketched = percentiles(bins=_bins(values))
    for p in (50, 95, 99):
        exact = ordered[int(p / 100 * (len(ordered) - 1))]
        assert sketched[f"p{p}"] == pytest.approx(exact, rel=RELATIVE_ACCURACY)
        assert sketched[f"p{p}"] == pytest.approx(reference.get_quantile_value(p / 100), abs=0.0006)


def test_counting_above_a_threshold() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert count_above(threshold=900, values=values) == 100
    assert count_above(threshold=900, bins=_bins(values)) == pytest.approx(100, abs=10)
