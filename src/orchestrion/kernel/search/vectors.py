"""Vectors as database blobs, and exact top-k by cosine over a matrix of them.

A vector is stored as its little-endian ``float32`` bytes: 4 bytes per dimension, the
same on SQLite and PostgreSQL, no extension needed. Search is brute force: one
matrix-vector product over unit rows gives every cosine, and ``argpartition`` picks the
best ``k`` without sorting the rest. Exact, and fast enough to a few hundred thousand
vectors per tenant (docs/embeddings.md has the figures).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_DTYPE = np.dtype("<f4")


def to_blob(vector: npt.ArrayLike) -> bytes:
    """The vector's little-endian ``float32`` bytes."""
    return np.asarray(vector, dtype=_DTYPE).reshape(-1).tobytes()


def from_blobs(blobs: Sequence[bytes], dimensions: int) -> npt.NDArray[np.float32]:
    """A ``(len(blobs), dimensions)`` ``float32`` matrix; raises ``ValueError`` when a
    blob is not ``dimensions`` floats long."""
    expected = dimensions * _DTYPE.itemsize
    for index, blob in enumerate(blobs):
        if len(blob) != expected:
            raise ValueError(f"vector {index} has {len(blob)} bytes, expected {expected}")
    if not blobs:
        return np.zeros((0, dimensions), dtype=np.float32)
    flat = np.frombuffer(b"".join(blobs), dtype=_DTYPE)
    return flat.reshape(len(blobs), dimensions).astype(np.float32)


def top_k(
    matrix: npt.NDArray[np.float32], query: npt.NDArray[np.float32], k: int
) -> list[tuple[int, float]]:
    """The ``k`` rows most similar to ``query`` as ``(row, cosine)``, best first; rows of
    equal score in row order. ``matrix`` rows and ``query`` must be unit vectors (then
    the dot product is the cosine)."""
    if k <= 0 or matrix.shape[0] == 0:
        return []
    scores = matrix @ np.asarray(query, dtype=np.float32).reshape(-1)
    if k < scores.shape[0]:
        candidates = np.argpartition(-scores, k - 1)[:k]
        # argpartition may cut inside a run of equal scores: take the whole run, so
        # ties are broken by row, not by where the partition happened to fall.
        floor = scores[candidates].min()
        candidates = np.flatnonzero(scores >= floor)
    else:
        candidates = np.arange(scores.shape[0])
    order = np.lexsort((candidates, -scores[candidates]))[:k]
    return [(int(candidates[i]), float(scores[candidates[i]])) for i in order]
