"""``approval``: wait until someone approves or rejects (``POST .../approve``)."""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrion.engine.outcomes import Outcome, StepCall, Waiting
from orchestrion.engine.registry import StepType
from orchestrion.engine.statuses import WaitKind
from orchestrion.engine.steps.schema import TIMEOUT, closed, deadline


class Approval(StepType):
    """Wait until someone approves or rejects; a rejection fails the step."""

    name = "approval"
    description = "Wait for approval, with data matching `schema`. Output {approved, data, by}."
    with_schema: ClassVar[dict[str, Any]] = closed(
        {"schema": {"type": "object"}, "timeout": TIMEOUT}
    )
    waits = frozenset({WaitKind.APPROVAL})
    schema_fields = ("schema",)

    async def run(self, call: StepCall) -> Outcome:
        """Wait for ``POST .../approve``; the data must match ``schema``."""
        spec = call.evaluated()
        return Waiting(
            WaitKind.APPROVAL,
            timeout_at=deadline(spec.get("timeout")),
            data={"schema": spec.get("schema") or {}},
        )
