"""``llm`` and ``agent`` steps: a model call, or a loop of model calls and tool calls.

Tokens are pushed to the execution's watchers as they arrive (never stored one by
one); the step's output holds the whole text. Usage travels in the outcome and is
recorded once per attempt by the runtime, in the transaction that records the step;
an agent's answers that asked for tools, and its tools' results, are journal parts
recorded (with their usage) as they come, so a retry reuses them.
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
from orchestrion.engine.llm.types import ChatRequest, ChatResult, ProviderError, ToolCall
from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType, expr_or
from orchestrion.engine.requirements import (
    CHILDREN,
    HTTP,
    JOURNAL,
    LLM,
    MCP,
    Journal,
    JournalEntry,
    Requirement,
)

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
    requires: ClassVar[tuple[Requirement[Any], ...]] = (LLM, HTTP, MCP, CHILDREN)
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
                usage=runner.unrecorded,
            )
        except ProviderError as exc:
            return Failed(str(exc), retryable=exc.retryable, usage=runner.unrecorded)
        except ToolError as exc:
            return Failed(str(exc), retryable=exc.retryable, usage=runner.unrecorded)
        if isinstance(output, Failed):
            return Failed(output.message, output.retryable, output.details, runner.unrecorded)
        output["provider"] = runner.provider_name
        output["usage"] = runner.meter.summary()
        return Succeeded(output, usage=runner.unrecorded)

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


#: Journal parts of one agent iteration: the model's answer, then each tool call's result.
_PARTS = 1000


class Agent(_ModelStep):
    """Model calls and tool runs in a loop until the model answers without tools.

    Each answer that asks for tools, and each tool's result, is a part of the step's
    journal (iteration ``i``: part ``i * 1000`` for the answer, ``i * 1000 + 1 + k`` for
    its ``k``-th tool call), recorded with what the call cost. A retried or re-run
    attempt replays the recorded parts in order and calls the model, or runs a tool,
    only for what is missing: nothing is paid twice. The final answer is not recorded,
    so a retry after an unusable one (a ``response_schema`` mismatch) asks again.
    """

    name = "agent"
    description = (
        "Let a model call `tools` (workflows, MCP tools) until it answers, at most "
        "`max_iterations` model calls; output {text, model, tool_calls, iterations, usage}."
    )
    with_schema: ClassVar[dict[str, Any]] = _schema(
        max_iterations=expr_or({"type": "integer", "minimum": 1, "maximum": 50})
    )
    requires = (*_ModelStep.requires, JOURNAL)

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
        journal = call.need(JOURNAL)
        history: list[dict[str, Any]] = []
        for iteration in range(limit):
            part = iteration * _PARTS
            recorded = await journal.get(call, part)
            if recorded is not None:
                runner.replayed(recorded.usage)
            else:
                result, usage = await runner.answer(request)
                if not result.tool_calls:
                    output = {"tool_calls": history, "iterations": iteration + 1}
                    finished: dict[str, Any] | Failed = self.finish(result, request, output)
                    return finished
                if len(result.tool_calls) >= _PARTS:
                    return Failed(
                        f"the model asked for {len(result.tool_calls)} tool calls at once, "
                        f"at most {_PARTS - 1}",
                        retryable=False,
                    )
                recorded = JournalEntry(_answer_record(result), (usage,))
                if await journal.put(call, part, recorded):
                    runner.recorded(usage)
                else:
                    # An attempt racing this one (a lost lease) recorded first: go on with
                    # its answer, as any later attempt will; this call's usage stays ours.
                    recorded = await journal.get(call, part) or recorded
            answer = _recorded_answer(recorded.output)
            if answer is None:
                return Failed(f"journal part {part} is not a model answer", retryable=False)
            text, tool_calls = answer
            request.messages.append(
                {
                    "role": "assistant",
                    "content": text,
                    "tool_calls": [c.as_dict() for c in tool_calls],
                }
            )
            for position, tool_call in enumerate(tool_calls, start=1):
                entry = await self._tool_result(call, journal, tools, tool_call, part + position)
                history.append(entry)
                request.messages.append(_tool_message(tool_call, entry))
        return Failed(
            f"the agent did not answer within {limit} model calls",
            retryable=False,
            details={"tool_calls": history},
        )

    @staticmethod
    async def _tool_result(
        call: StepCall,
        journal: Journal,
        tools: dict[str, BoundTool],
        tool_call: ToolCall,
        part: int,
    ) -> dict[str, Any]:
        """The history entry of ``tool_call`` (its result or error): recorded, else run
        and recorded. A recorded part is matched by position, and must carry the call's id."""
        recorded = await journal.get(call, part)
        if recorded is None:
            ran = JournalEntry(await Agent._run_tool(call, tools, tool_call))
            recorded = ran
            if not await journal.put(call, part, ran):
                # Recorded first by a racing attempt: its result is the one kept.
                recorded = await journal.get(call, part) or ran
        entry = recorded.output
        if isinstance(entry, dict) and entry.get("id") == tool_call.id:
            return entry
        raise ToolError(f"journal part {part} is not the result of call {tool_call.id!r}")

    @staticmethod
    async def _run_tool(
        call: StepCall, tools: dict[str, BoundTool], tool_call: ToolCall
    ) -> dict[str, Any]:
        """Run ``tool_call``: its history entry, with its result or error."""
        tool = tools.get(tool_call.name)
        try:
            if tool is None:
                raise ToolError(f"no tool named {tool_call.name!r}")
            provider = call.need(LLM).tools[tool.provider]
            value: Any = await provider.invoke(call, tool, tool_call.arguments)
            entry = {**tool_call.as_dict(), "result": value}
        except ToolError as exc:
            entry = {**tool_call.as_dict(), "error": str(exc)}
        return entry


def _answer_record(result: ChatResult) -> dict[str, Any]:
    """A model answer that asked for tools, as its journal part keeps it."""
    return {
        "text": result.text,
        "model": result.model,
        "finish_reason": result.finish_reason,
        "tool_calls": [c.as_dict() for c in result.tool_calls],
    }


def _recorded_answer(record: Any) -> tuple[str, list[ToolCall]] | None:
    """The text and tool calls of a recorded answer (None: not one)."""
    if not isinstance(record, dict) or not isinstance(record.get("tool_calls"), list):
        return None
    calls: list[ToolCall] = []
    for item in record["tool_calls"]:
        if not isinstance(item, dict) or not isinstance(item.get("arguments"), dict):
            return None
        calls.append(ToolCall(str(item.get("id")), str(item.get("name")), item["arguments"]))
    return str(record.get("text") or ""), calls


def _tool_message(tool_call: ToolCall, entry: dict[str, Any]) -> dict[str, Any]:
    """What the model is told of a tool call: its result, or ``{"error"}``."""
    value = entry["result"] if "result" in entry else {"error": entry.get("error")}
    # Text (an MCP tool's answer) goes as it is, anything else as JSON.
    content = value if isinstance(value, str) else json.dumps(value, default=str)
    return {
        "role": "tool",
        "tool_call_id": tool_call.id,
        "name": tool_call.name,
        "content": content,
    }
