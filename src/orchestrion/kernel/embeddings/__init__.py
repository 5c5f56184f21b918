"""Text embeddings behind one small protocol, chosen by ``settings.embeddings.provider``:
``local`` (all-MiniLM-L6-v2 in numpy, offline), ``openai`` (an OpenAI-compatible
``/embeddings`` endpoint) or ``none``."""

from __future__ import annotations

from orchestrion.kernel.embeddings.base import (
    Embedder,
    EmbeddingConfig,
    EmbeddingsDisabled,
    EmbeddingUnavailable,
    Matrix,
    normalise,
)

__all__ = [
    "Embedder",
    "EmbeddingConfig",
    "EmbeddingUnavailable",
    "EmbeddingsDisabled",
    "Matrix",
    "normalise",
    "open_embedder",
]


def open_embedder(settings: EmbeddingConfig) -> Embedder | None:
    """The configured embedder, or ``None`` when the provider is ``none``.

    Cheap: the local model loads on first use, the remote one connects per call.
    """
    if settings.provider == "none":
        return None
    if settings.provider == "openai":
        from orchestrion.kernel.embeddings.openai import OpenAIEmbedder

        return OpenAIEmbedder(settings)
    from orchestrion.kernel.embeddings.local import LocalEmbedder

    return LocalEmbedder(batch_size=settings.batch_size)
