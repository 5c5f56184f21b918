"""The OpenAI-compatible embedder against a real HTTP stand-in on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orchestrion.kernel.embeddings import EmbeddingUnavailable, open_embedder
from orchestrion.kernel.embeddings.openai import OpenAIEmbedder
from orchestrion.settings import EmbeddingSettings
from tests.fixtures.servers import free_port, serve_in_thread


@dataclass
class Provider:
    """What the stand-in saw, and what it answers next (``None``: vectors)."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    answer: Response | None = None
    delay: float = 0.0


def _vector(text: str, size: int) -> list[float]:
    # Deterministic, not unit length: the embedder must normalise.
    return [float(len(text) + i) for i in range(size)]


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    state = Provider(url="")

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        state.requests.append(body)
        state.headers.append(dict(request.headers))
        await asyncio.sleep(state.delay)
        if state.answer is not None:
            return state.answer
        size = body.get("dimensions", 3)
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(text, size)}
            for i, text in enumerate(body["input"])
        ]
        data.reverse()  # the index, not the position, says which text a vector is for
        return JSONResponse({"object": "list", "data": data, "model": body["model"]})

    app = Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])
    with serve_in_thread(app) as url:
        state.url = f"{url}/v1"
        yield state


@pytest.fixture(autouse=True)
def _reset(provider: Provider) -> None:
    provider.requests.clear()
    provider.headers.clear()
    provider.answer = None
    provider.delay = 0.0


def _embedder(provider: Provider, **overrides: Any) -> OpenAIEmbedder:
    values: dict[str, Any] = {
        "provider": "openai",
        "url": provider.url,
        "model": "test-embed",
        "api_key": SecretStr("sk-test"),
        "batch_size": 2,
        "timeout_seconds": 5,
    }
    embedder = open_embedder(EmbeddingSettings(**(values | overrides)))
    assert isinstance(embedder, OpenAIEmbedder)
    return embedder


async def test_batches_orders_and_normalises(provider: Provider) -> None:
    embedder = _embedder(provider)
    vectors = await embedder.embed(["a", "bbb", "cc"])
    assert [r["input"] for r in provider.requests] == [["a", "bbb"], ["cc"]]
    assert all(r["model"] == "test-embed" and "dimensions" not in r for r in provider.requests)
    assert provider.headers[0]["authorization"] == "Bearer sk-test"
    expected = np.array([_vector(t, 3) for t in ["a", "bbb", "cc"]], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)
    assert vectors.dtype == np.float32
    assert embedder.dimensions == 3  # learned from the answer
    assert embedder.name == "openai:test-embed"


async def test_sends_the_configured_dimensions(provider: Provider) -> None:
    embedder = _embedder(provider, dimensions=5)
    assert embedder.dimensions == 5
    assert (await embedder.embed(["x"])).shape == (1, 5)
    assert provider.requests[0]["dimensions"] == 5
    assert embedder.name == "openai:test-embed:5"


async def test_a_known_model_knows_its_size_before_any_call(provider: Provider) -> None:
    assert _embedder(provider, model="text-embedding-3-small").dimensions == 1536


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (JSONResponse({"error": {"message": "bad key"}}, 401), "answered 401: bad key"),
        (JSONResponse({"error": "overloaded"}, 503), "answered 503: overloaded"),
        (JSONResponse({"object": "list"}), "answered without embeddings"),
        (Response("not json", media_type="text/plain"), "answered without embeddings"),
        (JSONResponse({"data": [{"index": 0, "embedding": [1.0, 2.0, 3.0]}]}), "1 usable"),
    ],
)
async def test_provider_failures_are_503(provider: Provider, answer: Response, detail: str) -> None:
    provider.answer = answer
    with pytest.raises(EmbeddingUnavailable, match=detail) as raised:
        await _embedder(provider).embed(["one", "two"])
    assert raised.value.status_code == 503
    assert "sk-test" not in raised.value.detail


async def test_a_vector_of_another_size_is_refused(provider: Provider) -> None:
    provider.answer = JSONResponse({"data": [{"index": 0, "embedding": [1.0, 2.0]}]})
    with pytest.raises(EmbeddingUnavailable, match="2 dimensions, expected 5"):
        await _embedder(provider, dimensions=5).embed(["one"])


async def test_a_provider_slower_than_the_timeout_is_503(provider: Provider) -> None:
    provider.delay = 2.0
    with pytest.raises(EmbeddingUnavailable, match=r"did not answer within 0\.2s"):
        await _embedder(provider, timeout_seconds=0.2).embed(["one"])


async def test_an_unreachable_provider_is_503() -> None:
    settings = EmbeddingSettings(provider="openai", url=f"http://127.0.0.1:{free_port()}/v1")
    embedder = open_embedder(settings)
    assert embedder is not None
    with pytest.raises(EmbeddingUnavailable, match="unreachable") as raised:
        await embedder.embed(["one"])
    assert raised.value.status_code == 503


def test_openai_without_a_url_is_refused() -> None:
    with pytest.raises(EmbeddingUnavailable, match="ORCHESTRION_EMBEDDINGS__URL"):
        open_embedder(EmbeddingSettings(provider="openai"))
