"""Making a workflow through the workflows service's HTTP API, as the caller.

The templates service never touches the workflows tables: it sends the instantiated
definition to ``POST /api/v1/workflows`` with the caller's signed identity, so the
workflows service applies its own rules (``workflows:write``, validation, limits) to the
caller exactly as if the caller had sent it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from orchestrion.kernel.auth.identity import IDENTITY_HEADER, encode_identity
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    OrchestrionError,
    PayloadTooLarge,
    TooManyRequests,
)
from orchestrion.services.templates.errors import (
    WorkflowRejected,
    WorkflowsFailed,
    WorkflowsUnreachable,
)

logger = logging.getLogger("orchestrion.templates")
PATH = "/api/v1/workflows"
#: The workflows service's refusals passed on as this service's own (same status).
_PASSED_ON: dict[int, type[OrchestrionError]] = {
    400: BadRequest,
    403: Forbidden,
    409: Conflict,
    413: PayloadTooLarge,
    429: TooManyRequests,
}


def _problem(response: httpx.Response) -> tuple[str, list[dict[str, Any]]]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or f"status {response.status_code}", []
    if not isinstance(body, dict):
        return f"status {response.status_code}", []
    errors = body.get("errors")
    detail = str(body.get("detail") or body.get("title") or f"status {response.status_code}")
    return detail, [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


async def create_workflow(
    peers: Mapping[str, httpx.AsyncClient],
    *,
    principal: Principal,
    secret: bytes,
    definition: dict[str, Any],
    headers: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], bool]:
    """The workflow the workflows service created (its 201 body), and whether that was a
    replay of an earlier creation (same ``Idempotency-Key``).

    Its 422 (the definition does not validate) is a 422 with its errors; its other
    refusals keep their status; unreachable is a 503.
    """
    client = peers.get("workflows")
    if client is None:
        raise WorkflowsUnreachable("the workflows service is not reachable from this process")
    sent = {**(headers or {}), IDENTITY_HEADER: encode_identity(principal, secret)}
    try:
        response = await client.post(PATH, json=definition, headers=sent)
    except httpx.HTTPError as exc:
        logger.warning("workflows service unreachable: %s", exc)
        raise WorkflowsUnreachable(f"the workflows service is unreachable: {exc}") from None
    if response.status_code == 201:
        body: dict[str, Any] = response.json()
        return body, response.headers.get("Idempotent-Replayed") == "true"
    detail, errors = _problem(response)
    if response.status_code == 422:
        raise WorkflowRejected(f"the workflow does not validate: {detail}", errors=errors)
    error = _PASSED_ON.get(response.status_code)
    if error is not None:
        retry = response.headers.get("Retry-After")
        raise error(detail, errors=errors, headers={"Retry-After": retry} if retry else {})
    if response.status_code in (502, 503, 504):
        raise WorkflowsUnreachable(f"the workflows service is unavailable: {detail}")
    raise WorkflowsFailed(f"the workflows service answered {response.status_code}: {detail}")
