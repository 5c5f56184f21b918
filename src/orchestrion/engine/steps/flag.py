"""The ``flag`` step: a feature flag's answer, from the flags service.

``with``: ``key`` (the flag) and ``default`` (what the step answers when the tenant has no
such flag; without it, a missing flag fails the step). Output: ``{"key", "enabled",
"variant"}``, evaluated for the execution (the flags service sees the subject
``execution:<id>``): a rollout of N% sends about N% of runs down the new path, and a
retried step of one run gets the same answer while the flag is unchanged. A ``switch`` on
``steps.<id>.output.enabled`` (or ``.variant``) then picks the path.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType, expr_or
from orchestrion.engine.requirements import SERVICES
from orchestrion.engine.steps._services import call_service, text_field

_MISSING = 404


def _answered(answer: Any) -> Outcome:
    if not isinstance(answer, dict) or not isinstance(answer.get("enabled"), bool):
        return Failed("the flags service answered an unexpected body", retryable=False)
    return Succeeded(
        {"key": answer.get("key"), "enabled": answer["enabled"], "variant": answer.get("variant")}
    )


async def ask(call: StepCall, key: str) -> Outcome:
    """Flag ``key`` for the execution of ``call``: ``Succeeded({"key", "enabled",
    "variant"})``, or the failed call (:func:`is_missing` tells a flag the tenant lacks).

    The one way the engine evaluates a flag: the ``flag`` step and ``{{ flags.<key> }}``
    expressions both come here.
    """
    return await call_service(
        call,
        "flags",
        "GET",
        f"/api/v1/flags/{quote(key, safe='')}/evaluate",
        permissions=("flags:read",),
        shape=_answered,
    )


def is_missing(outcome: Outcome) -> bool:
    """Whether ``outcome`` of :func:`ask` says the tenant has no such flag."""
    return isinstance(outcome, Failed) and (outcome.details or {}).get("status") == _MISSING


class FlagStep(StepType):
    """Evaluate a feature flag for the execution."""

    name = "flag"
    description = (
        "Evaluate the feature flag `key` for this execution (sticky per run); output "
        "{key, enabled, variant}; `default` ({enabled, variant?}) answers when the flag does "
        "not exist."
    )
    with_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "key": expr_or({"type": "string", "minLength": 1}),
            "default": expr_or(
                {
                    "type": "object",
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "variant": {"type": ["string", "null"]},
                    },
                    "required": ["enabled"],
                    "additionalProperties": False,
                }
            ),
        },
        "required": ["key"],
        "additionalProperties": False,
    }
    requires = (SERVICES,)

    async def run(self, call: StepCall) -> Outcome:
        """Ask the flags service (``flags:read`` in the execution's tenant)."""
        spec = call.evaluated()
        key = text_field(spec, "key")
        if key is None:
            return Failed("'key' must be a non-empty string", retryable=False)
        outcome = await ask(call, key)
        default = spec.get("default")
        if (
            is_missing(outcome)
            and isinstance(default, dict)
            and isinstance(default.get("enabled"), bool)
        ):
            return Succeeded(
                {"key": key, "enabled": default["enabled"], "variant": default.get("variant")}
            )
        return outcome
