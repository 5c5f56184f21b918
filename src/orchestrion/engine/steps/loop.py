"""``loop``: repeat a body until a condition holds, each iteration recorded durably.

Every finished iteration is recorded in the step's journal (with what its model calls
cost) before the next starts: a retried, re-attempted or crashed loop finds them and
runs only the iterations that are missing, so a paid ``llm`` body is paid once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from orchestrion.engine.definition import nested_body
from orchestrion.engine.expressions import evaluate, parse_expression
from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType, expr_or
from orchestrion.engine.requirements import JOURNAL, STEPS, JournalEntry
from orchestrion.engine.steps.schema import closed

MAX_ITERATIONS = 1000


class Loop(StepType):
    """Repeat ``body`` until ``until`` holds or ``max_iterations`` is reached."""

    name = "loop"
    description = (
        "Repeat `body` (a step body that does not wait) until `until` holds, at most "
        "`max_iterations` times; `loop.index`, `loop.output` and `loop.outputs` are in scope. "
        "Output {iterations, output, outputs}."
    )
    with_schema: ClassVar[dict[str, Any]] = closed(
        {
            "max_iterations": expr_or({"type": "integer", "minimum": 1, "maximum": MAX_ITERATIONS}),
            "until": {"type": "string", "minLength": 1},
            "body": {"type": "object"},
        },
        "max_iterations",
    )
    requires = (STEPS, JOURNAL)

    @classmethod
    def bodies(cls, with_: Mapping[str, Any]) -> Sequence[tuple[Sequence[str | int], Any]]:
        """The ``body``, checked like a step's (type, ``with``, expressions)."""
        return [(["body"], with_["body"])] if "body" in with_ else []

    async def run(self, call: StepCall) -> Outcome:
        """Run ``body`` with ``loop`` in scope until ``until``, reusing recorded iterations."""
        runner, journal = call.need(STEPS), call.need(JOURNAL)
        limit = evaluate(call.raw_with.get("max_iterations"), call.context)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_ITERATIONS:
            return Failed(
                f"max_iterations must be 1..{MAX_ITERATIONS}, got {limit!r}", retryable=False
            )
        body = nested_body(call.raw_with.get("body") or {"type": "transform"})
        until = call.raw_with.get("until")
        outputs: list[Any] = []
        for index in range(limit):
            previous = outputs[-1] if outputs else None
            scope = {
                **call.context,
                "loop": {"index": index, "output": previous, "outputs": list(outputs)},
            }
            recorded = await journal.get(call, index)
            if recorded is None:
                inner = replace(call, step_id=f"{call.step_id}.{index}", context=scope)
                outcome = await runner.run_body(body, inner)
                if isinstance(outcome, Failed):
                    message = f"iteration {index}: {outcome.message}"
                    return Failed(message, outcome.retryable, outcome.details, outcome.usage)
                if not isinstance(outcome, Succeeded):
                    return Failed("a loop body cannot wait", retryable=False)
                recorded = JournalEntry(outcome.output, outcome.usage)
                await journal.put(call, index, recorded)
            outputs.append(recorded.output)
            done_scope = {**scope, "loop": {**scope["loop"], "output": recorded.output}}
            if until and parse_expression(until).render(done_scope):
                break
        return Succeeded({"iterations": len(outputs), "output": outputs[-1], "outputs": outputs})
