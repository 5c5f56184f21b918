"""Anthropic Messages, streamed."""

from __future__ import annotations

import json
from typing import Any

import httpx

from orchestrion.engine.llm.sse import events, raise_for_status
from orchestrion.engine.llm.types import (
    ChatRequest,
    ChatResult,
    ProviderConfig,
    ProviderError,
    TokenSink,
    ToolCall,
)

API_VERSION = "2023-06-01"
#: Anthropic requires ``max_tokens``; this is used when a step sets none.
DEFAULT_MAX_TOKENS = 4096


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message["tool_call_id"],
                "content": str(message.get("content", "")),
            }
            # Consecutive tool results travel in one user message.
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        if role == "assistant" and message.get("tool_calls"):
            blocks: list[dict[str, Any]] = []
            if message.get("content"):
                blocks.append({"type": "text", "text": message["content"]})
            blocks += [
                {"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["arguments"]}
                for c in message["tool_calls"]
            ]
            out.append({"role": "assistant", "content": blocks})
            continue
        out.append({"role": role, "content": str(message.get("content") or "")})
    return out


def request_body(request: ChatRequest) -> dict[str, Any]:
    """The JSON body of a streamed Messages call."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": _messages(request.messages),
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "stream": True,
    }
    system = request.system or ""
    if request.response_schema is not None:
        # No response_format here: ask for the JSON; the step validates it anyway.
        system = (system + "\n\n" if system else "") + (
            "Answer with only a JSON value (no prose, no code fence) matching this JSON "
            "Schema:\n" + json.dumps(request.response_schema)
        )
    if system:
        body["system"] = system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
    return body


async def chat(
    http: httpx.AsyncClient,
    config: ProviderConfig,
    request: ChatRequest,
    on_token: TokenSink,
    limits: httpx.Timeout,
) -> ChatResult:
    """Stream one message, pushing text deltas to ``on_token`` as they arrive."""
    headers = {"anthropic-version": API_VERSION, "Accept": "text/event-stream"}
    if config.api_key:
        headers["x-api-key"] = config.api_key
    url = config.base_url.rstrip("/") + "/v1/messages"
    result = ChatResult(text="", model=request.model)
    parts: list[str] = []
    blocks: dict[int, dict[str, Any]] = {}
    async with http.stream(
        "POST", url, json=request_body(request), headers=headers, timeout=limits
    ) as response:
        await raise_for_status(response, config.name)
        async for event in events(response):
            try:
                data = json.loads(event.data)
            except ValueError:
                raise ProviderError(f"{config.name} sent an event that is not JSON") from None
            kind = data.get("type", event.event)
            if kind == "message_start":
                message = data.get("message") or {}
                result.model = message.get("model") or result.model
                usage = message.get("usage") or {}
                result.input_tokens = int(usage.get("input_tokens") or 0)
                result.output_tokens = int(usage.get("output_tokens") or 0)
                result.reported = "input_tokens" in usage
            elif kind == "content_block_start":
                block = dict(data.get("content_block") or {})
                block["json"] = ""
                blocks[int(data.get("index", 0))] = block
            elif kind == "content_block_delta":
                delta = data.get("delta") or {}
                block = blocks.setdefault(int(data.get("index", 0)), {"type": "text", "json": ""})
                if delta.get("type") == "text_delta" and delta.get("text"):
                    parts.append(delta["text"])
                    await on_token(delta["text"])
                elif delta.get("type") == "input_json_delta":
                    block["json"] += delta.get("partial_json") or ""
            elif kind == "message_delta":
                usage = data.get("usage") or {}
                if "output_tokens" in usage:
                    result.output_tokens = int(usage["output_tokens"])
                    result.reported = True
                if "input_tokens" in usage and usage["input_tokens"] is not None:
                    result.input_tokens = int(usage["input_tokens"])
                result.finish_reason = (data.get("delta") or {}).get("stop_reason")
            elif kind == "error":
                error = data.get("error") or {}
                overloaded = error.get("type") in ("overloaded_error", "api_error")
                raise ProviderError(
                    f"{config.name}: {error.get('message', error)}", retryable=overloaded
                )
            elif kind == "message_stop":
                break
    result.text = "".join(parts)
    for _, block in sorted(blocks.items()):
        if block.get("type") != "tool_use":
            continue
        arguments: Any = block.get("input") or {}
        if block["json"]:
            try:
                arguments = json.loads(block["json"])
            except ValueError:
                raise ProviderError(f"tool input is not JSON: {block['json'][:200]!r}") from None
        result.tool_calls.append(
            ToolCall(id=str(block.get("id")), name=str(block.get("name")), arguments=arguments)
        )
    return result
