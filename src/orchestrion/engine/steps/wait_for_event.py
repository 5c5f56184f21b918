"""``wait_for_event``: wait until a named event is delivered (``POST .../signal``)."""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrion.engine.outcomes import Outcome, StepCall, Waiting
from orchestrion.engine.registry import StepType
from orchestrion.engine.statuses import WaitKind
from orchestrion.engine.steps.schema import TIMEOUT, closed, deadline


class WaitForEvent(StepType):
    """Wait until a named event is delivered to the execution."""

    name = "wait_for_event"
    description = "Wait for `event` (or `timeout` seconds); output the event's data."
    with_schema: ClassVar[dict[str, Any]] = closed(
        {"event": {"type": "string", "minLength": 1}, "timeout": TIMEOUT}, "event"
    )
    waits = frozenset({WaitKind.EVENT})

    async def run(self, call: StepCall) -> Outcome:
        """Wait for ``POST /executions/{id}/signal`` with this event name."""
        spec = call.evaluated()
        return Waiting(
            WaitKind.EVENT,
            timeout_at=deadline(spec.get("timeout")),
            data={"event": str(spec["event"])},
        )
