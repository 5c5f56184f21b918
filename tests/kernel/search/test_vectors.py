"""Blobs, exact top-k and reciprocal rank fusion."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrion.kernel.search import from_blobs, reciprocal_rank_fusion, to_blob, top_k


def test_blobs_round_trip_as_little_endian_float32() -> None:
    vectors = np.array([[1.0, -2.5, 3.25], [0.0, 0.5, -1.0]], dtype=np.float64)
    blobs = [to_blob(v) for v in vectors]
    assert blobs[0] == np.array([1.0, -2.5, 3.25], dtype="<f4").tobytes()
    assert all(len(b) == 12 for b in blobs)
    matrix = from_blobs(blobs, 3)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, vectors.astype(np.float32))
    assert from_blobs([], 3).shape == (0, 3)


def test_a_blob_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="vector 1 has 8 bytes, expected 12"):
        from_blobs([to_blob([1, 2, 3]), to_blob([1, 2])], 3)


def _unit(rows: list[list[float]]) -> np.ndarray:
    matrix = np.asarray(rows, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_top_k_returns_the_best_rows_by_cosine_best_first() -> None:
    rng = np.random.default_rng(7)
    matrix = _unit(rng.normal(size=(500, 16)).tolist())
    query = _unit([rng.normal(size=16).tolist()])[0]
    found = top_k(matrix, query, 10)
    expected = np.argsort(-(matrix @ query), kind="stable")[:10]
    assert [row for row, _ in found] == expected.tolist()
    assert [score for _, score in found] == pytest.approx((matrix @ query)[expected].tolist())


def test_top_k_breaks_ties_by_row_and_handles_small_inputs() -> None:
    matrix = _unit([[1, 0], [0, 1], [1, 0], [1, 0], [1, 1]])
    assert [row for row, _ in top_k(matrix, np.array([1, 0], np.float32), 2)] == [0, 2]
    assert [row for row, _ in top_k(matrix, np.array([1, 0], np.float32), 9)] == [0, 2, 3, 4, 1]
    assert top_k(matrix, np.array([1, 0], np.float32), 0) == []
    assert top_k(np.zeros((0, 2), np.float32), np.array([1, 0], np.float32), 3) == []


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60)
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62)
    assert [key for key, _ in fused] == ["a", "c", "b"]


def test_rrf_ties_are_broken_deterministically() -> None:
    # x and y both score 1/61: x reached rank 1 in the first ranking, so it leads.
    assert [k for k, _ in reciprocal_rank_fusion([["x"], ["y"]])] == ["x", "y"]
    assert [k for k, _ in reciprocal_rank_fusion([["y"], ["x"]])] == ["y", "x"]
    # Equal sums and both first somewhere: the one first in the earlier ranking leads.
    fused = reciprocal_rank_fusion([["p", "q"], ["q", "p"]], k=0)
    assert [k for k, _ in fused] == ["p", "q"]


def test_rrf_counts_a_repeated_item_once_per_ranking() -> None:
    assert dict(reciprocal_rank_fusion([["a", "a", "b"]], k=0)) == {"a": 1.0, "b": 1 / 3}
    assert reciprocal_rank_fusion([]) == []
