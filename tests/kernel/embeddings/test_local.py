"""The numpy all-MiniLM-L6-v2 against the model's published similarities."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from orchestrion.kernel.embeddings import Embedder, open_embedder
from orchestrion.kernel.embeddings.local import LocalEmbedder
from orchestrion.settings import EmbeddingSettings


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder(batch_size=4)


async def test_vectors_are_unit_rows_of_384_float32(embedder: LocalEmbedder) -> None:
    vectors = await embedder.embed(["one", "two words", "", "a " * 600])
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_similar_sentences_are_close_and_unrelated_ones_far(
    embedder: LocalEmbedder,
) -> None:
    food, bread, movie = await embedder.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."]
    )
    assert float(food @ bread) > 0.6
    assert float(food @ movie) < 0.2


async def test_matches_the_published_reference_similarities(embedder: LocalEmbedder) -> None:
    # The sentence-transformers quick start prints these cosines for all-MiniLM-L6-v2
    # (tensor([[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], ...])), and its
    # semantic similarity example 0.7553 for the food/bread pair.
    weather, sunny, stadium = await embedder.embed(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    assert float(weather @ sunny) == pytest.approx(0.6660, abs=2e-3)
    assert float(weather @ stadium) == pytest.approx(0.1046, abs=2e-3)
    assert float(sunny @ stadium) == pytest.approx(0.1411, abs=2e-3)
    food, bread = await embedder.embed(
        ["A man is eating food.", "A man is eating a piece of bread."]
    )
    assert float(food @ bread) == pytest.approx(0.7553, abs=2e-3)


async def test_batching_and_padding_do_not_change_a_vector(embedder: LocalEmbedder) -> None:
    texts = ["short", "a considerably longer sentence that needs padding of the others", "mid one"]
    together = await embedder.embed(texts)
    alone = np.vstack([await embedder.embed([text]) for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_concurrent_first_use_loads_one_model() -> None:
    from orchestrion.kernel.embeddings import local

    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(LocalEmbedder().embed_sync(["same"])))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert all(np.array_equal(results[0], r) for r in results)
    assert local._model is local._load()


async def test_empty_input_gives_an_empty_matrix(embedder: LocalEmbedder) -> None:
    assert (await embedder.embed([])).shape == (0, 384)


def test_open_embedder_follows_the_provider() -> None:
    local = open_embedder(EmbeddingSettings(provider="local", batch_size=8))
    assert isinstance(local, LocalEmbedder)
    assert isinstance(local, Embedder)
    assert local.batch_size == 8
    assert local.name == "local:all-MiniLM-L6-v2"
    assert open_embedder(EmbeddingSettings(provider="none")) is None
