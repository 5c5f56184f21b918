"""Search building blocks shared by services: vectors stored as blobs and brute-force
cosine ranking (:mod:`.vectors`), and fusion of rankings (:mod:`.fusion`)."""

from orchestrion.kernel.search.fusion import reciprocal_rank_fusion
from orchestrion.kernel.search.vectors import from_blobs, to_blob, top_k

__all__ = ["from_blobs", "reciprocal_rank_fusion", "to_blob", "top_k"]
