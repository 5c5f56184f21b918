"""``switch``: output the value of the first case whose condition holds."""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrion.engine.expressions import evaluate, parse_expression
from orchestrion.engine.outcomes import Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType
from orchestrion.engine.steps.schema import closed


class Switch(StepType):
    """Output the value of the first case whose condition holds, else ``default``."""

    name = "switch"
    description = "Output the `value` of the first of `cases` whose `when` holds, else `default`."
    with_schema: ClassVar[dict[str, Any]] = closed(
        {
            "cases": {
                "type": "array",
                "items": closed({"when": {"type": "string", "minLength": 1}, "value": {}}, "when"),
            },
            "default": {},
        },
        "cases",
    )
    instant = True

    async def run(self, call: StepCall) -> Outcome:
        """Conditions are evaluated in order; only the chosen value is evaluated."""
        for position, case in enumerate(call.raw_with.get("cases") or []):
            if parse_expression(case["when"]).render(call.context):
                value = evaluate(case.get("value"), call.context)
                return Succeeded({"case": position, "value": value})
        default = evaluate(call.raw_with.get("default"), call.context)
        return Succeeded({"case": None, "value": default})
