"""A service called in process fails as it would over the network: its caller gets the
500 problem it answered, never the exception it raised."""

from __future__ import annotations

from fastapi import FastAPI

from orchestrion.gateway.upstream import InProcessUpstream
from orchestrion.kernel.errors import install_error_handlers


async def test_a_peer_gets_the_500_of_a_service_that_raised() -> None:
    service = FastAPI()
    install_error_handlers(service)

    @service.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug in the service")

    upstream = InProcessUpstream("broken", service, secret=b"s" * 32)
    try:
        response = await upstream.client.get("/boom")
    finally:
        await upstream.aclose()
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "a bug in the service" not in response.text
