"""``sub_workflow``: run another workflow and output the child execution's outputs."""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Waiting
from orchestrion.engine.registry import StepType, expr_or
from orchestrion.engine.statuses import WaitKind
from orchestrion.engine.steps.schema import closed


class SubWorkflow(StepType):
    """Run another workflow and output the child execution's outputs."""

    name = "sub_workflow"
    description = "Run workflow `workflow_id` with `inputs`; output its outputs."
    with_schema: ClassVar[dict[str, Any]] = closed(
        {"workflow_id": {"type": "string", "minLength": 1}, "inputs": expr_or({"type": "object"})},
        "workflow_id",
    )
    waits = frozenset({WaitKind.CHILD})

    async def run(self, call: StepCall) -> Outcome:
        """Ask the runtime to start the child; the step waits for its end."""
        spec = call.evaluated()
        inputs = spec.get("inputs") or {}
        if not isinstance(inputs, dict):
            return Failed("'inputs' must be an object", retryable=False)
        return Waiting(
            WaitKind.CHILD, data={"workflow_id": str(spec["workflow_id"]), "inputs": inputs}
        )
