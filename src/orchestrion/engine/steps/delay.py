"""``delay``: wait a number of seconds on a durable timer."""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Waiting
from orchestrion.engine.registry import StepType, expr_or
from orchestrion.engine.statuses import WaitKind
from orchestrion.engine.steps.schema import closed, deadline


class Delay(StepType):
    """Wait a number of seconds on a durable timer."""

    name = "delay"
    description = "Wait `seconds`; the timer survives a restart. Output {}."
    with_schema: ClassVar[dict[str, Any]] = closed(
        {"seconds": expr_or({"type": "number", "minimum": 0})}, "seconds"
    )
    waits = frozenset({WaitKind.TIMER})

    async def run(self, call: StepCall) -> Outcome:
        """A timer the task queue fires: it survives restarts."""
        seconds = call.evaluated().get("seconds")
        if not isinstance(seconds, int | float) or seconds < 0:
            return Failed(f"'seconds' must be a number >= 0, got {seconds!r}", retryable=False)
        return Waiting(WaitKind.TIMER, resume_at=deadline(seconds))
