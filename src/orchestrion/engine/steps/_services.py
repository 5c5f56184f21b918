"""What the step types that call a platform service share: the call, as an outcome.

Not a step module (``MODULES`` does not list it): ``content``, ``plugin``, ``knowledge``
and ``notify`` steps each declare :data:`~orchestrion.engine.requirements.SERVICES` and
use :func:`call_service` so a refused or failed call reads the same in every one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.requirements import SERVICES, ServiceCallError


async def call_service(
    call: StepCall,
    service: str,
    method: str,
    path: str,
    *,
    permissions: tuple[str, ...],
    json: Any = None,
    params: Mapping[str, str] | None = None,
    shape: Callable[[Any], Outcome] | None = None,
) -> Outcome:
    """Call ``service`` for ``call``; its answer (through ``shape``) or a failed step.

    A service that cannot be reached, answers 5xx or 429 fails the attempt retryably
    (the step's retry policy applies); any other refusal (404, 422...) is final.
    """
    services = call.resources.get(SERVICES)
    if services is None:
        return Failed(f"the {service} service is not reachable from this process", retryable=False)
    try:
        answer = await services.call(
            service, method, path, call=call, permissions=permissions, json=json, params=params
        )
    except ServiceCallError as exc:
        return refused(exc)
    return shape(answer) if shape is not None else Succeeded(answer)


def refused(exc: ServiceCallError) -> Failed:
    """A failed step for a refused or failed call (retryable as the call says)."""
    return Failed(str(exc), retryable=exc.retryable, details={"status": exc.status})


def text_field(spec: Mapping[str, Any], name: str) -> str | None:
    """``spec[name]`` when it is a non-empty string, else None."""
    value = spec.get(name)
    return value if isinstance(value, str) and value else None
