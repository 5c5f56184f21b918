"""``fail``: fail the step with a message."""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrion.engine.outcomes import Failed, Outcome, StepCall
from orchestrion.engine.registry import StepType
from orchestrion.engine.steps.schema import STRING, closed


class Fail(StepType):
    """Fail the step with a message."""

    name = "fail"
    description = "Fail with `message`."
    with_schema: ClassVar[dict[str, Any]] = closed({"message": STRING}, "message")
    instant = True

    async def run(self, call: StepCall) -> Outcome:
        """Always a failure, never retried."""
        return Failed(str(call.evaluated().get("message")), retryable=False)
