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
    steps: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``inputs``, ``steps.<id>.output``/``status``, ``execution``, ``env``, ``item``,
    ``index``, and ``flags`` (the values the execution recorded; see ``engine.flags``).

    ``steps``: each state's ``steps.<id>`` entry already made, to copy (see
    ``runtime.progress``), instead of reading every state."""
    context: dict[str, Any] = {
        "inputs": execution.inputs,
        "steps": dict(steps) if steps is not None else step_entries(states),
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


def step_entry(state: StepState) -> dict[str, Any]:
    """What expressions read of a step: ``steps.<id>.output`` and ``.status``."""
    return {"output": state.output, "status": public_step_status(state.status)}


def step_entries(states: Mapping[str, StepState]) -> dict[str, dict[str, Any]]:
    """Every state's :func:`step_entry`, by step id."""
    return {step_id: step_entry(state) for step_id, state in states.items()}


def backoff_seconds(*, attempt: int, backoff: str, delay: float, max_delay: float) -> float:
    """The wait before attempt ``attempt + 1``."""
    if backoff == "fixed":
        return min(delay, max_delay)
    return float(min(delay * (2 ** (attempt - 1)), max_delay))
