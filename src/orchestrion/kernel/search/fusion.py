"""Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009).

Each ranking gives an item ``1 / (k + rank)`` (rank from 1); an item's score is the sum
over the rankings it appears in. Only ranks count, so rankings whose scores are on
different scales (BM25, cosine) combine without calibration; ``k = 60`` is the paper's.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]], *, k: int = 60
) -> list[tuple[K, float]]:
    """Items of all ``rankings`` (each best first) with their fused score, best first.

    Ties are broken by the best rank the item reached in any ranking, then by the first
    ranking it appears in, so the result is deterministic. An item listed twice in one
    ranking counts once, at its better rank.
    """
    if k < 0:
        raise ValueError("k must not be negative")
    scores: dict[K, float] = {}
    best: dict[K, tuple[int, int]] = {}
    for which, ranking in enumerate(rankings):
        seen: set[K] = set()
        for rank, key in enumerate(ranking, start=1):
            if key in seen:
                continue
            seen.add(key)
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
            best[key] = min(best.get(key, (rank, which)), (rank, which))
    return sorted(scores.items(), key=lambda item: (-item[1], best[item[0]]))
