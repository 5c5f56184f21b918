"""Embedding benchmark: the local model's throughput, and brute-force vector search.

Run: ``.venv/bin/python -m bench.embeddings [--texts 512] [--sizes 10000,100000]``.

- ``local model``: all-MiniLM-L6-v2 in numpy on this CPU, texts per second for short
  node-like texts (a name and a sentence, ~20 word pieces) and for texts at the 256
  word piece limit, batches of ``--batch``.
- ``search``: for each size, a matrix of random unit 384-dim vectors stored as blobs:
  the time to build the matrix from the blobs (what a cache miss costs after the
  database read) and one exact top-10 query (matrix-vector product + argpartition),
  median of 50, with the matrix's memory.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from orchestrion.kernel.embeddings.local import LocalEmbedder
from orchestrion.kernel.search import from_blobs, to_blob, top_k


def _rate(embedder: LocalEmbedder, texts: list[str]) -> float:
    start = time.perf_counter()
    embedder.embed_sync(texts)
    return len(texts) / (time.perf_counter() - start)


def model(count: int, batch: int) -> None:
    embedder = LocalEmbedder(batch_size=batch)
    start = time.perf_counter()
    embedder.embed_sync(["warm up"])
    print(f"model load + first text: {time.perf_counter() - start:.2f} s")
    short = [f"Topic {i}\nA short note about subject number {i} and why it matters."
             for i in range(count)]  # fmt: skip
    long = [" ".join(f"word{j}" for j in range(400))] * max(8, count // 16)
    fast = _rate(embedder, short)
    print(f"short texts: {fast:8.1f} texts/s ({1000 / fast:.1f} ms per node)")
    print(f"256-piece texts: {_rate(embedder, long):8.1f} texts/s")


def search(sizes: list[int], dimensions: int = 384) -> None:
    rng = np.random.default_rng(0)
    print(f"{'vectors':>10} {'MiB':>8} {'blobs->matrix ms':>18} {'top-10 ms':>10}")
    for size in sizes:
        vectors = rng.normal(size=(size, dimensions)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        blobs = [to_blob(v) for v in vectors]
        start = time.perf_counter()
        matrix = from_blobs(blobs, dimensions)
        load = (time.perf_counter() - start) * 1000
        times = []
        for _ in range(50):
            query = vectors[rng.integers(size)]
            start = time.perf_counter()
            top_k(matrix, query, 10)
            times.append((time.perf_counter() - start) * 1000)
        mib = matrix.nbytes / 2**20
        print(f"{size:>10} {mib:>8.1f} {load:>18.1f} {statistics.median(times):>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    model(args.texts, args.batch)
    search([int(s) for s in args.sizes.split(",")])


if __name__ == "__main__":
    main()
