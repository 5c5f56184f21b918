"""OpenAI-compatible chat completions, streamed (OpenAI, Azure OpenAI v1, vLLM, Ollama...)."""

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


def _message(message: dict[str, Any]) -> dict[str, Any]:
    role = message["role"]
    if role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message["tool_call_id"],
            "content": str(message.get("content", "")),
        }
    out: dict[str, Any] = {"role": role, "content": message.get("content")}
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
            }
            for call in message["tool_calls"]
        ]
    return out


def request_body(request: ChatRequest) -> dict[str, Any]:
    """The JSON body of a streamed chat completion."""
    messages = [_message(m) for m in request.messages]
    if request.system:
        messages.insert(0, {"role": "system", "content": request.system})
    body: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in request.tools
        ]
    if request.response_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": request.response_schema},
        }
    return body


def _arguments(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError as exc:
        raise ProviderError(f"tool arguments are not JSON: {raw[:200]!r}") from exc
    return value if isinstance(value, dict) else {"value": value}


async def chat(
    http: httpx.AsyncClient,
    config: ProviderConfig,
    request: ChatRequest,
    on_token: TokenSink,
    limits: httpx.Timeout,
) -> ChatResult:
    """Stream one completion, pushing text chunks to ``on_token`` as they arrive."""
    headers = {"Accept": "text/event-stream"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
        headers["api-key"] = config.api_key  # Azure OpenAI's header
    url = config.base_url.rstrip("/") + "/chat/completions"
    result = ChatResult(text="", model=request.model)
    parts: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    async with http.stream(
        "POST", url, json=request_body(request), headers=headers, timeout=limits
    ) as response:
        await raise_for_status(response, config.name)
        async for event in events(response):
            if event.data.strip() == "[DONE]":
                break
            try:
                chunk = json.loads(event.data)
            except ValueError:
                raise ProviderError(f"{config.name} sent a chunk that is not JSON") from None
            if "error" in chunk:
                raise ProviderError(f"{config.name}: {chunk['error']}")
            result.model = chunk.get("model") or result.model
            usage = chunk.get("usage")
            if usage:
                result.input_tokens = int(usage.get("prompt_tokens") or 0)
                result.output_tokens = int(usage.get("completion_tokens") or 0)
                result.reported = True
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                text = delta.get("content")
                if text:
                    parts.append(text)
                    await on_token(text)
                for piece in delta.get("tool_calls") or []:
                    slot = calls.setdefault(int(piece.get("index", 0)), {"arguments": ""})
                    if piece.get("id"):
                        slot["id"] = piece["id"]
                    function = piece.get("function") or {}
                    if function.get("name"):
                        slot["name"] = function["name"]
                    slot["arguments"] += function.get("arguments") or ""
                if choice.get("finish_reason"):
                    result.finish_reason = choice["finish_reason"]
    result.text = "".join(parts)
    result.tool_calls = [
        ToolCall(
            id=slot.get("id") or f"call_{index}",
            name=slot.get("name", ""),
            arguments=_arguments(slot["arguments"]),
        )
        for index, slot in sorted(calls.items())
    ]
    return result
