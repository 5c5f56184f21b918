"""``llm`` and ``agent`` steps: a model call, or a loop of model calls and tool calls.

Tokens are pushed to the execution's watchers as they arrive (never stored one by
one); the step's output holds the whole text. Usage travels in the outcome and is
recorded once per attempt by the runtime, in the transaction that records the step.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from jsonschema.exceptions import SchemaError

from orchestrion.engine import tenant_schemas
from orchestrion.engine.llm.backend import BoundTool, BudgetExceeded, LlmBackend, ToolError
from orchestrion.engine.llm.run import ModelRunner
from orchestrion.engine.llm.types import ChatRequest, ChatResult, ProviderError
from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType, expr_or
from orchestrion.engine.requirements import CHILDREN, HTTP, LLM, MCP

_MESSAGE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "role": {"enum": ["user", "assistant", "system"]},
        "content": {"type": "string"},
    },
    "required": ["role", "content"],
}
_FALLBACK: dict[str, Any] = {
    "type": "array",
    "items": {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {
                "type": "object",
                "properties": {"provider": {"type": "string"}, "model": {"type": "string"}},
                "required": ["model"],
                "additionalProperties": False,
            },
        ]
    },
}
_PROPERTIES: dict[str, Any] = {
    "provider": {"type": "string", "minLength": 1},
    "model": {"type": "string", "minLength": 1},
    "prompt": {"type": "string"},
    "messages": expr_or({"type": "array", "items": _MESSAGE, "minItems": 1}),
    "system": {"type": "string"},
    "temperature": expr_or({"type": "number", "minimum": 0, "maximum": 2}),
    "max_tokens": expr_or({"type": "integer", "minimum": 1}),
    "response_schema": {"type": "object"},
    "tools": {"type": "array", "items": {"type": "object"}},
    "fallback": _FALLBACK,
}


def _schema(**extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**_PROPERTIES, **extra},
        "required": ["model"],
        "anyOf": [{"required": ["prompt"]}, {"required": ["messages"]}],
        "additionalProperties": False,
    }


def _request(spec: dict[str, Any]) -> ChatRequest | Failed:
    messages = spec.get("messages")
    if messages is None:
        messages = [{"role": "user", "content": str(spec.get("prompt", ""))}]
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and m.get("role") in ("user", "assistant", "system") for m in messages
    ):
        return Failed("'messages' must be a list of {role, content}", retryable=False)
    system = spec.get("system")
    # A system message in the list joins the system prompt (Anthropic has no such role).
    extra = [str(m.get("content", "")) for m in messages if m["role"] == "system"]
    system = "\n\n".join([s for s in [system, *extra] if s]) or None
    schema = spec.get("response_schema")
    if schema is not None:
        try:
            tenant_schemas.check_schema(schema)
        except SchemaError as exc:
            return Failed(f"'response_schema' is not a JSON Schema: {exc.message}", False)
    return ChatRequest(
        model=str(spec["model"]),
        messages=[
            {"role": m["role"], "content": str(m.get("content", ""))}
            for m in messages
            if m["role"] != "system"
        ],
        system=system,
        temperature=spec.get("temperature"),
        max_tokens=spec.get("max_tokens"),
        response_schema=schema,
    )


async def _bind_tools(
    call: StepCall, backend: LlmBackend, refs: list[dict[str, Any]]
) -> dict[str, BoundTool]:
    bound: dict[str, BoundTool] = {}
    for provider in backend.tools.values():
        mine = [ref for ref in refs if provider.key in ref]
        if mine:
            for tool in await provider.describe(call, mine):
                bound[tool.spec.name] = tool
    unknown = [ref for ref in refs if not any(p.key in ref for p in backend.tools.values())]
    if unknown:
        keys = ", ".join(sorted(p.key for p in backend.tools.values())) or "none"
        raise ToolError(f"a tool entry names none of: {keys} ({unknown[0]!r})")
    return bound


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def _structured(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    fenced = _FENCE.match(text)
    try:
        data = json.loads(fenced.group(1) if fenced else text)
    except (ValueError, RecursionError):  # a model can answer [[[[... as well as anyone
        return None, "the answer is not JSON"
    errors = sorted(tenant_schemas.iter_errors(schema, data), key=lambda e: e.path)
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        return None, f"the answer does not match response_schema at {where}: {errors[0].message}"
    return data, None


class _ModelStep(StepType, ABC):
    # Tools may be MCP servers' tools or other workflows (child executions).
    requires = (LLM, HTTP, MCP, CHILDREN)
    schema_fields = ("response_schema",)

    async def run(self, call: StepCall) -> Outcome:
        """Call the model (and tools for an agent); usage travels with the outcome."""
        backend = call.resources.get(LLM)
        if backend is None:
            return Failed("LLM steps are not available here", retryable=False)
        spec = call.evaluated()
        request = _request(spec)
        if isinstance(request, Failed):
            return request
        runner = ModelRunner(call, backend, spec)
        try:
            tools = await _bind_tools(call, backend, list(spec.get("tools") or []))
            request.tools = [tool.spec for tool in tools.values()]
            output = await self.converse(call, runner, request, tools, spec)
        except BudgetExceeded as exc:
            return Failed(
                str(exc),
                retryable=False,
                details={"problem": exc.problem},
                usage=runner.meter.usage,
            )
        except ProviderError as exc:
            return Failed(str(exc), retryable=exc.retryable, usage=runner.meter.usage)
        except ToolError as exc:
            return Failed(str(exc), retryable=exc.retryable, usage=runner.meter.usage)
        if isinstance(output, Failed):
            return Failed(output.message, output.retryable, output.details, runner.meter.usage)
        output["provider"] = runner.provider_name
        output["usage"] = runner.meter.summary()
        return Succeeded(output, usage=runner.meter.usage)

    @abstractmethod
    async def converse(
        self,
        call: StepCall,
        runner: ModelRunner,
        request: ChatRequest,
        tools: dict[str, BoundTool],
        spec: dict[str, Any],
    ) -> dict[str, Any] | Failed:
        """The step's output from the model (and tools): each step type's own."""

    @staticmethod
    def finish(result: ChatResult, request: ChatRequest, output: dict[str, Any]) -> Any:
        """Add ``text``, ``model`` and, with a response_schema, the validated ``data``."""
        output.update(text=result.text, model=result.model, finish_reason=result.finish_reason)
        if request.response_schema is not None:
            data, problem = _structured(result.text, request.response_schema)
            if problem is not None:
                # Another sample may conform: retryable under the step's retry policy.
                return Failed(problem, retryable=True, details={"text": result.text})
            output["data"] = data
        return output


class Llm(_ModelStep):
    """One model call; tool calls the model asks for are returned, not run."""

    name = "llm"
    description = (
        "Call a model with `prompt` or `messages`; output {text, model, tool_calls, usage} "
        "(and `data` with a `response_schema`). Tokens stream to the execution's watchers."
    )
    with_schema: ClassVar[dict[str, Any]] = _schema()

    async def converse(
        self,
        call: StepCall,
        runner: ModelRunner,
        request: ChatRequest,
        tools: dict[str, BoundTool],
        spec: dict[str, Any],
    ) -> dict[str, Any] | Failed:
        """A single call."""
        result = await runner.complete(request)
        output: dict[str, Any] = {"tool_calls": [c.as_dict() for c in result.tool_calls]}
        finished: dict[str, Any] | Failed = self.finish(result, request, output)
        return finished


class Agent(_ModelStep):
    """Model calls and tool runs in a loop until the model answers without tools."""

    name = "agent"
    description = (
        "Let a model call `tools` (workflows, MCP tools) until it answers, at most "
        "`max_iterations` model calls; output {text, model, tool_calls, iterations, usage}."
    )
    with_schema: ClassVar[dict[str, Any]] = _schema(
        max_iterations=expr_or({"type": "integer", "minimum": 1, "maximum": 50})
    )

    async def converse(
        self,
        call: StepCall,
        runner: ModelRunner,
        request: ChatRequest,
        tools: dict[str, BoundTool],
        spec: dict[str, Any],
    ) -> dict[str, Any] | Failed:
        """Call, run the tools asked for, feed back their results; repeat."""
        limit = spec.get("max_iterations", 5)
        if not isinstance(limit, int) or not 1 <= limit <= 50:
            return Failed(f"max_iterations must be 1..50, got {limit!r}", retryable=False)
        history: list[dict[str, Any]] = []
        for iteration in range(1, limit + 1):
            result = await runner.complete(request)
            if not result.tool_calls:
                output = {"tool_calls": history, "iterations": iteration}
                finished: dict[str, Any] | Failed = self.finish(result, request, output)
                return finished
            request.messages.append(
                {
                    "role": "assistant",
                    "content": result.text,
                    "tool_calls": [c.as_dict() for c in result.tool_calls],
                }
            )
            for tool_call in result.tool_calls:
                tool = tools.get(tool_call.name)
                try:
                    if tool is None:
                        raise ToolError(f"no tool named {tool_call.name!r}")
                    provider = call.need(LLM).tools[tool.provider]
                    value: Any = await provider.invoke(call, tool, tool_call.arguments)
                    entry = {**tool_call.as_dict(), "result": value}
                except ToolError as exc:
                    value = {"error": str(exc)}
                    entry = {**tool_call.as_dict(), "error": str(exc)}
                history.append(entry)
                # Text (an MCP tool's answer) goes as it is, anything else as JSON.
                content = value if isinstance(value, str) else json.dumps(value, default=str)
                request.messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": tool_call.id,
                        "name": tool_call.name,
                        "content": content,
                    }
                )
        return Failed(
            f"the agent did not answer within {limit} model calls",
            retryable=False,
            details={"tool_calls": history},
        )
