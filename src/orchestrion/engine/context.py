"""What expressions see, and the wait between attempts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrion.engine.models import Execution, StepState
from orchestrion.engine.statuses import public_step_status


def expression_context(
    execution: Execution,
    states: Mapping[str, StepState],
    *,
    env: Mapping[str, str],
    item: Any = None,
    index: int | None = None,
    iterating: bool = False,
    flags: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``inputs``, ``steps.<id>.output``/``status``, ``execution``, ``env``, ``item``,
    ``index``, and ``flags`` (the values the execution recorded; see ``engine.flags``)."""
    context: dict[str, Any] = {
        "inputs": execution.inputs,
        "steps": {
            step_id: {"output": state.output, "status": public_step_status(state.status)}
            for step_id, state in states.items()
        },
        "execution": {
            "id": execution.id,
            "workflow_id": execution.workflow_id,
            "workflow_version": execution.workflow_version,
            "tenant_id": execution.tenant_id,
        },
        "env": dict(env),
    }
    if flags is not None:
        context["flags"] = dict(flags)
    if iterating:
        context["item"] = item
        context["index"] = index
    return context


def backoff_seconds(*, attempt: int, backoff: str, delay: float, max_delay: float) -> float:
    """The wait before attempt ``attempt + 1``."""
    if backoff == "fixed":
        return min(delay, max_delay)
    return float(min(delay * (2 ** (attempt - 1)), max_delay))
