"""``transform``: output the ``with`` object with every expression evaluated."""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrion.engine.outcomes import Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType


class Transform(StepType):
    """Output the ``with`` object with every expression evaluated."""

    name = "transform"
    description = "Evaluate the expressions in `with` and output the result."
    with_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    instant = True

    async def run(self, call: StepCall) -> Outcome:
        """The evaluated ``with``."""
        return Succeeded(call.evaluated())
