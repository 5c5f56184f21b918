"""The embedding port: turn texts into unit vectors, whatever computes them.

Errors::

    OrchestrionError
    ├── ValidationFailed
    │   └── EmbeddingsDisabled      provider ``none``: nothing can embed (422)
    └── ServiceUnavailable
        └── EmbeddingUnavailable    the provider failed or answered nonsense (503)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import SecretStr

from orchestrion.kernel.errors import ServiceUnavailable, ValidationFailed

Matrix = npt.NDArray[np.float32]


class EmbeddingConfig(Protocol):
    """What the embedders read of ``settings.embeddings`` (the kernel does not import
    the settings module, which sits above it)."""

    @property
    def provider(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    @property
    def model(self) -> str: ...
    @property
    def api_key(self) -> SecretStr | None: ...
    @property
    def dimensions(self) -> int | None: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def timeout_seconds(self) -> float: ...


@runtime_checkable
class Embedder(Protocol):
    """Computes embeddings; ``name`` identifies the model so stored vectors of another
    model are never compared with its own."""

    name: str
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> Matrix:
        """``float32`` matrix of shape ``(len(texts), dimensions)``, rows L2-normalised."""
        ...


class EmbeddingsDisabled(ValidationFailed):
    """No embedding provider is configured, so the request cannot be served."""

    title = "Embeddings disabled"


class EmbeddingUnavailable(ServiceUnavailable):
    """The embedding provider is down, refused, or answered something unusable."""

    title = "Embeddings unavailable"


def normalise(matrix: Matrix) -> Matrix:
    """Rows scaled to unit length (zero rows stay zero, not NaN)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)
