"""The built-in step types: their names, descriptions, ``with`` schemas and ``run``.

The schemas describe ``with`` as written, so every typed field also accepts a ``{{ }}``
string (:func:`expr_or`); the value is checked again by the step once evaluated. Fields are
closed (``additionalProperties: false``) so a typo such as ``heders`` is a 422, not ignored.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from orchestrion.engine.expressions import evaluate, parse_expression
from orchestrion.engine.netguard import BlockedDestination, check_destination
from orchestrion.engine.outcomes import (
    Failed,
    ModelUsage,
    Outcome,
    StepCall,
    Succeeded,
    Waiting,
)
from orchestrion.engine.registry import StepType, StepTypeRegistry, expr_or
from orchestrion.kernel.ids import utcnow

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
    instant = True

    async def run(self, call: StepCall) -> Outcome:
        """The evaluated ``with``."""
        return Succeeded(call.evaluated())


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

    async def run(self, call: StepCall) -> Outcome:
        """Send the request; 5xx, 429 and network errors are retryable, 4xx are not."""
        spec = call.evaluated()
        method = str(spec.get("method") or "GET").upper()
        url = str(spec["url"])
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return Failed(f"not an http(s) URL: {url!r}", retryable=False)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            await check_destination(parts.hostname, port, call.services.http_allowlist)
        except BlockedDestination as exc:
            return Failed(str(exc), retryable=False)
        headers = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
        headers.setdefault("Idempotency-Key", call.idempotency_key)
        timeout = float(spec.get("timeout") or 30.0)
        try:
            response = await call.services.http.request(
                method,
                url,
                headers=headers,
                json=spec.get("json"),
                content=spec.get("body"),
                timeout=timeout,
            )
        except httpx.TimeoutException:
            return Failed(f"{method} {url} timed out after {timeout:g}s")
        except httpx.HTTPError as exc:
            return Failed(f"{method} {url} failed: {type(exc).__name__}: {exc}")
        output = {
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": _body(response),
        }
        if response.status_code >= 400:
            retryable = response.status_code >= 500 or response.status_code in (408, 429)
            return Failed(
                f"{method} {url} answered {response.status_code}",
                retryable=retryable,
                details={"response": output},
            )
        return Succeeded(output)


def _body(response: httpx.Response) -> Any:
    if "json" in response.headers.get("content-type", ""):
        try:
            return json.loads(response.content)
        except ValueError:
            pass
    return response.text


def _deadline(seconds: Any) -> Any:
    return None if seconds in (None, "") else utcnow() + timedelta(seconds=float(seconds))


class Delay(StepType):
    """Wait a number of seconds on a durable timer."""

    name = "delay"
    description = "Wait `seconds`; the timer survives a restart. Output {}."
    with_schema: ClassVar[dict[str, Any]] = _closed(
        {"seconds": expr_or({"type": "number", "minimum": 0})}, "seconds"
    )

    async def run(self, call: StepCall) -> Outcome:
        """A timer the task queue fires: it survives restarts."""
        seconds = call.evaluated().get("seconds")
        if not isinstance(seconds, int | float) or seconds < 0:
            return Failed(f"'seconds' must be a number >= 0, got {seconds!r}", retryable=False)
        return Waiting("timer", resume_at=_deadline(seconds))


class Approval(StepType):
    """Wait until someone approves or rejects; a rejection fails the step."""

    name = "approval"
    description = "Wait for approval, with data matching `schema`. Output {approved, data, by}."
    with_schema: ClassVar[dict[str, Any]] = _closed(
        {"schema": {"type": "object"}, "timeout": _TIMEOUT}
    )

    async def run(self, call: StepCall) -> Outcome:
        """Wait for ``POST .../approve``; the data must match ``schema``."""
        spec = call.evaluated()
        return Waiting(
            "approval",
            timeout_at=_deadline(spec.get("timeout")),
            data={"schema": spec.get("schema") or {}},
        )


class SubWorkflow(StepType):
    """Run another workflow and output the child execution's outputs."""

    name = "sub_workflow"
    description = "Run workflow `workflow_id` with `inputs`; output its outputs."
    with_schema: ClassVar[dict[str, Any]] = _closed(
        {"workflow_id": {"type": "string", "minLength": 1}, "inputs": expr_or({"type": "object"})},
        "workflow_id",
    )

    async def run(self, call: StepCall) -> Outcome:
        """Ask the runtime to start the child; the step waits for its end."""
        spec = call.evaluated()
        inputs = spec.get("inputs") or {}
        if not isinstance(inputs, dict):
            return Failed("'inputs' must be an object", retryable=False)
        return Waiting("child", data={"workflow_id": str(spec["workflow_id"]), "inputs": inputs})


class Fail(StepType):
    """Fail the step with a message."""

    name = "fail"
    description = "Fail with `message`."
    with_schema: ClassVar[dict[str, Any]] = _closed({"message": _STRING}, "message")
    instant = True

    async def run(self, call: StepCall) -> Outcome:
        """Always a failure, never retried."""
        return Failed(str(call.evaluated().get("message")), retryable=False)


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
    instant = True

    async def run(self, call: StepCall) -> Outcome:
        """Conditions are evaluated in order; only the chosen value is evaluated."""
        for position, case in enumerate(call.raw_with.get("cases") or []):
            if parse_expression(case["when"]).render(call.context):
                value = evaluate(case.get("value"), call.context)
                return Succeeded({"case": position, "value": value})
        default = evaluate(call.raw_with.get("default"), call.context)
        return Succeeded({"case": None, "value": default})


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

    async def run(self, call: StepCall) -> Outcome:
        """Run ``body`` with ``loop.index`` and ``loop.output`` in scope until ``until``."""
        from orchestrion.engine.registry import default_registry

        limit = evaluate(call.raw_with.get("max_iterations"), call.context)
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            return Failed(f"max_iterations must be 1..1000, got {limit!r}", retryable=False)
        body = call.raw_with.get("body") or {"type": "transform", "with": {}}
        body_type = default_registry.get(str(body.get("type")))
        if body_type is None or body_type.name == "loop":
            return Failed(f"loop body type {body.get('type')!r} cannot run", retryable=False)
        until = call.raw_with.get("until")
        outputs: list[Any] = []
        spent: tuple[ModelUsage, ...] = ()  # what model calls in the body cost
        for index in range(limit):
            previous = outputs[-1] if outputs else None
            state = {"index": index, "output": previous, "outputs": list(outputs)}
            scope = {**call.context, "loop": state}
            inner = StepCall(
                execution_id=call.execution_id,
                tenant_id=call.tenant_id,
                step_id=f"{call.step_id}.{index}",
                index=call.index,
                attempt=call.attempt,
                raw_with=body.get("with") or {},
                context=scope,
                services=call.services,
            )
            outcome = await body_type().run(inner)
            if isinstance(outcome, Waiting):
                return Failed("a loop body cannot wait", retryable=False, usage=spent)
            spent += outcome.usage
            if isinstance(outcome, Failed):
                message = f"iteration {index}: {outcome.message}"
                return Failed(message, outcome.retryable, outcome.details, usage=spent)
            outputs.append(outcome.output)
            done_scope = {**scope, "loop": {**scope["loop"], "output": outcome.output}}
            if until and parse_expression(until).render(done_scope):
                break
        output = {"iterations": len(outputs), "output": outputs[-1], "outputs": outputs}
        return Succeeded(output, usage=spent)


class WaitForEvent(StepType):
    """Wait until a named event is delivered to the execution."""

    name = "wait_for_event"
    description = "Wait for `event` (or `timeout` seconds); output the event's data."
    with_schema: ClassVar[dict[str, Any]] = _closed(
        {"event": {"type": "string", "minLength": 1}, "timeout": _TIMEOUT}, "event"
    )

    async def run(self, call: StepCall) -> Outcome:
        """Wait for ``POST /executions/{id}/signal`` with this event name."""
        spec = call.evaluated()
        return Waiting(
            "event", timeout_at=_deadline(spec.get("timeout")), data={"event": str(spec["event"])}
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
    """Register every built-in step type on registry (``llm``, ``agent`` and ``mcp`` included)."""
    # Imported here: the MCP SDK is only loaded when step types are first needed.
    from orchestrion.engine.mcp.step import McpStep
    from orchestrion.engine.nodes.llm import LLM_STEP_TYPES

    for step_type in (*BUILTIN_STEP_TYPES, *LLM_STEP_TYPES, McpStep):
        registry.register(step_type)
