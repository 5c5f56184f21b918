"""How one service reaches another: an HTTP client per peer service, by name.

Services never import each other; they call each other's HTTP API. A :class:`Peers`
maps a service name to an ``httpx.AsyncClient`` whose base URL is that service and whose
default headers carry the internal token (so ``/internal/...`` endpoints, guarded by
``kernel.http.deps.Internal``, accept the calls).

The composer fills it: the embedded shape (``orchestrion.platform``) with in-process
ASGI clients, and sets it as ``app.state.peers`` on every service app before their
lifespans run; a standalone service builds one from base URLs with :meth:`Peers.from_urls`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import httpx

from orchestrion.kernel.auth.identity import INTERNAL_HEADER, internal_token

DEFAULT_TIMEOUT_SECONDS = 10.0


def internal_headers(secret: bytes) -> dict[str, str]:
    """The headers that mark a call as internal (from the platform, not a client)."""
    return {INTERNAL_HEADER: internal_token(secret)}


class Peers(Mapping[str, httpx.AsyncClient]):
    """Service name → HTTP client to that service; closes only the clients it created."""

    def __init__(self, clients: Mapping[str, httpx.AsyncClient] | None = None) -> None:
        self._clients: dict[str, httpx.AsyncClient] = dict(clients or {})
        self._owned: list[httpx.AsyncClient] = []

    @classmethod
    def from_urls(
        cls,
        urls: Mapping[str, str],
        *,
        secret: bytes,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> Peers:
        """Clients with pooled keep-alive connections to the services at ``urls``."""
        peers = cls()
        for name, url in urls.items():
            client = httpx.AsyncClient(
                base_url=url.rstrip("/"), headers=internal_headers(secret), timeout=timeout
            )
            peers.add(name, client)
            peers._owned.append(client)
        return peers

    def add(self, name: str, client: httpx.AsyncClient) -> None:
        """Reach service ``name`` through ``client`` (replacing any earlier one)."""
        self._clients[name] = client

    def merged(self, other: Mapping[str, httpx.AsyncClient]) -> Peers:
        """These peers, completed by ``other`` for the names this one lacks."""
        combined = Peers({**other, **self._clients})
        combined._owned = self._owned
        return combined

    def __getitem__(self, name: str) -> httpx.AsyncClient:
        return self._clients[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._clients)

    def __len__(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        """Close the clients built by :meth:`from_urls` (borrowed ones belong to their owner)."""
        for client in self._owned:
            await client.aclose()
        self._owned = []
