"""Percentiles of durations: exact on small sets, a DDSketch beyond.

Exact percentiles use linear interpolation between the closest ranks (numpy's default,
Excel's ``PERCENTILE.INC``): for ``n`` sorted values the p-th percentile sits at rank
``p/100 * (n - 1)``.

Past :data:`EXACT_MAX` durations the answer comes from a DDSketch (Masson, Rim and Lee,
VLDB 2019, the ``ddsketch`` package's logarithmic mapping): every duration is counted in
the bin ``ceil(log_gamma(x))`` with ``gamma = (1 + a) / (1 - a)``, and a quantile is the
representative value of the bin holding its rank (``rank = q * (n - 1)``, as DDSketch
does). The answer is within a relative error ``a`` (:data:`RELATIVE_ACCURACY`, 1 %) of
the exact value at that rank, however many durations there are and however they spread.
Bins are rows (tenant, workflow, hour, bin → count), so ranges merge by adding counts,
and a correction (an execution retried after it failed) takes one out again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from ddsketch.mapping import LogarithmicMapping

#: Relative accuracy of sketched percentiles.
RELATIVE_ACCURACY = 0.01
#: Up to this many durations, percentiles are exact (computed from the raw values).
EXACT_MAX = 10_000
#: The bin of durations too small for the mapping (zero): sorts before every other.
ZERO_BIN = -1_000_000
MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
PERCENTILES = (50, 95, 99)


def bin_of(duration_ms: float) -> int:
    """The sketch bin ``duration_ms`` counts in."""
    if duration_ms <= MAPPING.min_possible:
        return ZERO_BIN
    return int(MAPPING.key(duration_ms))


def bin_value(key: int) -> float:
    """The representative value of a bin (what a quantile in it answers)."""
    return 0.0 if key == ZERO_BIN else float(MAPPING.value(key))


def exact_percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile of ``values`` (sorted ascending), linearly interpolated."""
    if not values:
        return None
    rank = p / 100 * (len(values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def sketch_percentile(bins: Mapping[int, int], p: float) -> float | None:
    """The ``p``-th percentile from bin counts, as DDSketch answers it."""
    total = sum(count for count in bins.values() if count > 0)
    if total == 0:
        return None
    rank = p / 100 * (total - 1)
    running = 0
    for key in sorted(bins):
        count = bins[key]
        if count <= 0:
            continue
        running += count
        if running > rank:
            return bin_value(key)
    return bin_value(max(bins))


def percentiles(
    *,
    values: Iterable[float] | None = None,
    bins: Mapping[int, int] | None = None,
    wanted: Sequence[int] = PERCENTILES,
) -> dict[str, float | None]:
    """``{"p50", "p95", "p99"}`` from raw values (exact) or from sketch bins."""
    if values is not None:
        ordered = sorted(values)
        found = {p: exact_percentile(ordered, p) for p in wanted}
    else:
        found = {p: sketch_percentile(bins or {}, p) for p in wanted}
    return {f"p{p}": None if v is None else round(v, 3) for p, v in found.items()}


def count_above(
    *,
    threshold: float,
    values: Iterable[float] | None = None,
    bins: Mapping[int, int] | None = None,
) -> int:
    """How many durations exceed ``threshold`` (from the bins: those whose bin's value does)."""
    if values is not None:
        return sum(1 for v in values if v > threshold)
    return sum(count for key, count in (bins or {}).items() if bin_value(key) > threshold)
