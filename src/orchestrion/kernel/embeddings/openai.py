"""Embeddings from an OpenAI-compatible ``POST {url}/embeddings`` endpoint.

The request is ``{"model", "input": [...], "dimensions"?}`` with a bearer key; the answer's
``data[i].embedding`` come back in ``data[i].index`` order. Any failure (refused
connection, timeout, a non-2xx status, a body without the expected vectors) is an
:class:`EmbeddingUnavailable` (503) whose detail says which, never the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from orchestrion.kernel.embeddings.base import (
    EmbeddingConfig,
    EmbeddingUnavailable,
    Matrix,
    normalise,
)
from orchestrion.kernel.http.tls import client_context

# Sizes of well-known models, so ``dimensions`` is right before the first call.
KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIEmbedder:
    """A remote embedding model; ``dimensions`` is the configured size, the model's known
    size, or learned from the first answer."""

    def __init__(self, settings: EmbeddingConfig) -> None:
        if not settings.url:
            raise EmbeddingUnavailable(
                "embedding provider 'openai' needs ORCHESTRION_EMBEDDINGS__URL"
            )
        self.url = settings.url.rstrip("/") + "/embeddings"
        self.model = settings.model
        self.requested_dimensions = settings.dimensions
        self.dimensions = settings.dimensions or KNOWN_DIMENSIONS.get(settings.model, 0)
        self.name = f"openai:{settings.model}" + (
            f":{settings.dimensions}" if settings.dimensions else ""
        )
        self.batch_size = settings.batch_size
        self.timeout = settings.timeout_seconds
        key = settings.api_key.get_secret_value() if settings.api_key else None
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    async def embed(self, texts: Sequence[str]) -> Matrix:
        """Unit vectors for ``texts``, ``batch_size`` texts per request."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        parts: list[Matrix] = []
        # One client per call: no connection outlives the event loop that opened it.
        async with httpx.AsyncClient(
            timeout=self.timeout, headers=self.headers, verify=client_context()
        ) as client:
            for start in range(0, len(texts), self.batch_size):
                batch = texts[start : start + self.batch_size]
                parts.append(await self._request(client, batch))
        return normalise(np.concatenate(parts))

    async def _request(self, client: httpx.AsyncClient, batch: list[str]) -> Matrix:
        body: dict[str, Any] = {"model": self.model, "input": batch}
        if self.requested_dimensions:
            body["dimensions"] = self.requested_dimensions
        try:
            response = await client.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise EmbeddingUnavailable(
                f"embedding provider at {self.url} did not answer within {self.timeout:g}s"
            ) from exc
        except httpx.HTTPError as exc:
            raise EmbeddingUnavailable(
                f"embedding provider at {self.url} is unreachable ({type(exc).__name__})"
            ) from exc
        if response.status_code >= 400:
            raise EmbeddingUnavailable(
                f"embedding provider at {self.url} answered {response.status_code}: "
                f"{_message(response)}"
            )
        return self._vectors(response, len(batch))

    def _vectors(self, response: httpx.Response, expected: int) -> Matrix:
        try:
            data = response.json()["data"]
            rows = sorted(data, key=lambda item: int(item.get("index", 0)))
            matrix = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EmbeddingUnavailable(
                f"embedding provider at {self.url} answered without embeddings"
            ) from exc
        if matrix.ndim != 2 or matrix.shape[0] != expected or not np.isfinite(matrix).all():
            raise EmbeddingUnavailable(
                f"embedding provider at {self.url} answered {matrix.shape[0] if matrix.ndim else 0}"
                f" usable vectors for {expected} texts"
            )
        if not self.dimensions:
            self.dimensions = int(matrix.shape[1])
        if matrix.shape[1] != self.dimensions:
            raise EmbeddingUnavailable(
                f"embedding provider at {self.url} answered vectors of {matrix.shape[1]} "
                f"dimensions, expected {self.dimensions}"
            )
        return matrix


def _message(response: httpx.Response) -> str:
    """The provider's own error message, short, when it gave one."""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        text = str(message or body)
    except ValueError:
        text = response.text
    return text[:200] or response.reason_phrase
