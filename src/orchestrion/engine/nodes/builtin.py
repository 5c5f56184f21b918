"""The built-in step types: their names, descriptions and ``with`` schemas.

The schemas describe ``with`` as written, so every typed field also accepts a ``{{ }}``
string (:func:`expr_or`); the value is checked again by the step once evaluated. Fields are
closed (``additionalProperties: false``) so a typo such as ``heders`` is a 422, not ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrion.engine.registry import StepType, StepTypeRegistry, expr_or

_STRING: dict[str, Any] = {"type": "string"}
_TIMEOUT: dict[str, Any] = expr_or({"type": "number", "exclusiveMinimum": 0})


def _closed(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


class Transform(StepType):
    """Output the ``with`` object with every expression evaluated."""

    name = "transform"
    description = "Evaluate the expressions in `with` and output the result."
    with_schema: ClassVar[dict[str, Any]] = {"type": "object"}


class Http(StepType):
    """Call an HTTP endpoint; a status of 400 or more fails the step."""

    name = "http"
    description = "Send an HTTP request; output {status, headers, body}."
    with_schema: ClassVar[dict[str, Any]] = {
        **_closed(
            {
                "method": expr_or(
                    {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"], "default": "GET"}
                ),
                "url": {"type": "string", "minLength": 1},
                "headers": expr_or({"type": "object", "additionalProperties": _STRING}),
                "json": {},
                "body": _STRING,
                "timeout": _TIMEOUT,
            },
            "url",
        ),
        "not": {"required": ["json", "body"]},
    }


class Delay(StepType):
    """Wait a number of seconds on a durable timer."""

    name = "delay"
    description = "Wait `seconds`; the timer survives a restart. Output {}."
    with_schema: ClassVar[dict[str, Any]] = _closed(
        {"seconds": expr_or({"type": "number", "minimum": 0})}, "seconds"
    )


class Approval(StepType):
    """Wait until someone approves or rejects; a rejection fails the step."""

    name = "approval"
    description = "Wait for approval, with data matching `schema`. Output {approved, data, by}."
    with_schema: ClassVar[dict[str, Any]] = _closed(
        {"schema": {"type": "object"}, "timeout": _TIMEOUT}
    )


class SubWorkflow(StepType):
    """Run another workflow and output the child execution's outputs."""

    name = "sub_workflow"
    description = "Run workflow `workflow_id` with `inputs`; output its outputs."
    with_schema: ClassVar[dict[str, Any]] = _closed(
        {"workflow_id": {"type": "string", "minLength": 1}, "inputs": expr_or({"type": "object"})},
        "workflow_id",
    )


class Fail(StepType):
    """Fail the step with a message."""

    name = "fail"
    description = "Fail with `message`."
    with_schema: ClassVar[dict[str, Any]] = _closed({"message": _STRING}, "message")


class Switch(StepType):
    """Output the value of the first case whose condition holds, else ``default``."""

    name = "switch"
    description = "Output the `value` of the first of `cases` whose `when` holds, else `default`."
    with_schema: ClassVar[dict[str, Any]] = _closed(
        {
            "cases": {
                "type": "array",
                "items": _closed({"when": {"type": "string", "minLength": 1}, "value": {}}, "when"),
            },
            "default": {},
        },
        "cases",
    )


class Loop(StepType):
    """Repeat ``body`` until ``until`` holds or ``max_iterations`` is reached."""

    name = "loop"
    description = "Repeat `body` until `until` holds, at most `max_iterations` times."
    with_schema: ClassVar[dict[str, Any]] = _closed(
        {
            "max_iterations": expr_or({"type": "integer", "minimum": 1, "maximum": 1000}),
            "until": {"type": "string", "minLength": 1},
            "body": {"type": "object"},
        },
        "max_iterations",
    )


class WaitForEvent(StepType):
    """Wait until a named event is delivered to the execution."""

    name = "wait_for_event"
    description = "Wait for `event` (or `timeout` seconds); output the event's data."
    with_schema: ClassVar[dict[str, Any]] = _closed(
        {"event": {"type": "string", "minLength": 1}, "timeout": _TIMEOUT}, "event"
    )


BUILTIN_STEP_TYPES: tuple[type[StepType], ...] = (
    Transform,
    Http,
    Delay,
    Approval,
    SubWorkflow,
    Fail,
    Switch,
    Loop,
    WaitForEvent,
)


def register_builtins(registry: StepTypeRegistry) -> None:
    """Register every built-in step type on registry."""
    for step_type in BUILTIN_STEP_TYPES:
        registry.register(step_type)
