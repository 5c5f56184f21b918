"""How ``content``, ``plugin`` and ``knowledge`` steps reach their services: over HTTP.

:class:`PeerCalls` provides the engine's ``SERVICES`` requirement. Each call goes to the
named service's public API with a signed identity header (``kernel.auth.identity``) for a
principal of the execution's tenant holding only the permissions the step asked for: the
service checks tenancy and permissions exactly as for a client, so a workflow reaches
what its tenant owns and nothing more.

The clients are found when the runtime starts (:meth:`PeerCalls.bind`): in-process ASGI
clients in the embedded shape, else base URLs from ``ORCHESTRION_PEERS``, else
the service registry (Redis), as for any peer (``kernel.http.peers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from orchestrion.engine import ServiceCallError, StepCall
from orchestrion.kernel.auth.identity import IDENTITY_HEADER, encode_identity
from orchestrion.kernel.auth.principal import Principal

#: A service answering one of these may answer differently later.
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


def _reason(response: httpx.Response) -> str:
    """The problem's detail (or title), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:500]
    return str(body)[:200]


class PeerCalls:
    """The ``SERVICES`` requirement over HTTP clients to the platform's services."""

    def __init__(self, secret: bytes, *, timeout: float = 30.0) -> None:
        self._secret = secret
        self._timeout = timeout
        self._clients: Mapping[str, httpx.AsyncClient] = {}

    def bind(self, clients: Mapping[str, httpx.AsyncClient]) -> None:
        """Use ``clients`` (service name → client) from now on."""
        self._clients = clients

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        call: StepCall,
        permissions: tuple[str, ...],
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Send the request as the execution; its JSON answer (raises ServiceCallError)."""
        client = self._clients.get(service)
        if client is None:
            raise ServiceCallError(
                f"the {service} service is not known to this process", status=None, retryable=True
            )
        principal = Principal(
            subject=f"execution:{call.execution_id}",
            tenant_id=call.tenant_id,
            permissions=frozenset(permissions),
        )
        headers = {
            IDENTITY_HEADER: encode_identity(principal, self._secret),
            "Idempotency-Key": call.idempotency_key,
        }
        try:
            response = await client.request(
                method, path, json=json, params=params, headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            raise ServiceCallError(
                f"{service}: {type(exc).__name__}: {exc}", status=None, retryable=True
            ) from exc
        if response.status_code >= 400:
            raise ServiceCallError(
                f"{service} answered {response.status_code}: {_reason(response)}",
                status=response.status_code,
                retryable=response.status_code in _RETRYABLE,
            )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceCallError(
                f"{service} answered a body that is not JSON", status=None, retryable=False
            ) from exc
