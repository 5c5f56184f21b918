"""AWS Bedrock Converse, streamed (``ConverseStream``), through botocore.

botocore is synchronous: the call and the reading of its event stream run in a worker
thread, which hands each event to the event loop as it is decoded, so tokens still reach
watchers while the model writes. Clients and credentials: :mod:`.bedrock_client`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
from botocore.exceptions import ClientError

from orchestrion.engine.llm.bedrock_client import client_for, not_streamable, provider_error
from orchestrion.engine.llm.types import (
    ChatRequest,
    ChatResult,
    ProviderConfig,
    ProviderError,
    TokenSink,
    ToolCall,
)


def _text(value: Any) -> list[dict[str, Any]]:
    text = str(value or "")
    return [{"text": text}] if text else []


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role == "tool":
            content = _text(message.get("content")) or [{"text": "(empty)"}]
            block = {"toolResult": {"toolUseId": message["tool_call_id"], "content": content}}
            role, blocks = "user", [block]
        elif role == "assistant" and message.get("tool_calls"):
            blocks = _text(message.get("content")) + [
                {"toolUse": {"toolUseId": c["id"], "name": c["name"], "input": c["arguments"]}}
                for c in message["tool_calls"]
            ]
        else:
            blocks = _text(message.get("content")) or [{"text": " "}]
        # Converse wants turns to alternate: same-role neighbours travel as one message.
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def request_params(request: ChatRequest) -> dict[str, Any]:
    """The keyword arguments of ``converse_stream`` / ``converse``."""
    params: dict[str, Any] = {"modelId": request.model, "messages": _messages(request.messages)}
    system = request.system or ""
    if request.response_schema is not None:
        # Converse has no response_format for every model: ask; the step validates it.
        system = (system + "\n\n" if system else "") + (
            "Answer with only a JSON value (no prose, no code fence) matching this JSON "
            "Schema:\n" + json.dumps(request.response_schema)
        )
    if system:
        params["system"] = [{"text": system}]
    inference: dict[str, Any] = {}
    if request.max_tokens is not None:
        inference["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if inference:
        params["inferenceConfig"] = inference
    if request.tools:
        params["toolConfig"] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": t.name,
                        "description": t.description or t.name,
                        "inputSchema": {"json": t.parameters},
                    }
                }
                for t in request.tools
            ]
        }
    return params


class _Reader:
    """Collects ConverseStream events into a ChatResult."""

    def __init__(self, model: str, on_token: TokenSink) -> None:
        self.result = ChatResult(text="", model=model)
        self.on_token = on_token
        self.parts: list[str] = []
        self.tools: dict[int, dict[str, Any]] = {}

    async def feed(self, event: dict[str, Any]) -> None:
        if "contentBlockStart" in event:
            body = event["contentBlockStart"]
            use = (body.get("start") or {}).get("toolUse")
            if use is not None:
                self.tools[int(body.get("contentBlockIndex", 0))] = {**use, "json": ""}
        elif "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            delta = body.get("delta") or {}
            if delta.get("text"):
                self.parts.append(delta["text"])
                await self.on_token(delta["text"])
            elif "toolUse" in delta:
                block = self.tools.setdefault(int(body.get("contentBlockIndex", 0)), {"json": ""})
                block["json"] += (delta["toolUse"] or {}).get("input") or ""
        elif "messageStop" in event:
            self.result.finish_reason = event["messageStop"].get("stopReason")
        elif "metadata" in event:
            self.usage(event["metadata"].get("usage") or {})

    def usage(self, usage: dict[str, Any]) -> None:
        if "inputTokens" in usage or "outputTokens" in usage:
            self.result.input_tokens = int(usage.get("inputTokens") or 0)
            self.result.output_tokens = int(usage.get("outputTokens") or 0)
            self.result.reported = True

    def done(self) -> ChatResult:
        self.result.text = "".join(self.parts)
        for _, block in sorted(self.tools.items()):
            try:
                arguments = json.loads(block["json"] or "{}")
            except ValueError:
                raise ProviderError(f"tool input is not JSON: {block['json'][:200]!r}") from None
            self.result.tool_calls.append(
                ToolCall(
                    id=str(block.get("toolUseId")),
                    name=str(block.get("name")),
                    arguments=arguments if isinstance(arguments, dict) else {"value": arguments},
                )
            )
        return self.result


async def _stream(client: Any, params: dict[str, Any], reader: _Reader) -> None:
    """Run ConverseStream in a thread, feeding its events to ``reader`` as they come."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()
    holder: dict[str, Any] = {}

    def hand(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is gone: nobody is listening
            stop.set()

    def produce() -> None:
        stream: Any = None
        try:
            holder["stream"] = stream = client.converse_stream(**params)["stream"]
            for event in stream:
                if stop.is_set():
                    break
                hand("event", event)
        except Exception as exc:
            hand("error", exc)
        finally:
            if stream is not None:
                # A stream left unread (an exception event, a cancelled step) keeps its
                # connection: close it (a fully read one is back in the pool already).
                stream.close()
            hand("end", None)

    worker = loop.run_in_executor(None, produce)
    try:
        while True:
            kind, value = await queue.get()
            if kind == "event":
                await reader.feed(value)
            elif kind == "error":
                raise value
            else:
                break
    finally:
        stop.set()
        stream = holder.get("stream")
        if stream is not None and not worker.done():
            # Unblocks a thread waiting on the socket when the step is cancelled.
            await asyncio.to_thread(stream.close)


async def chat(
    http: httpx.AsyncClient,
    config: ProviderConfig,
    request: ChatRequest,
    on_token: TokenSink,
    limits: httpx.Timeout,
) -> ChatResult:
    """Stream one Converse answer, pushing text deltas to ``on_token`` as they arrive."""
    if not config.api_key and not config.trusted:
        raise ProviderError(
            f"{config.name}: a tenant's Bedrock provider needs an api_key", retryable=False
        )
    params = request_params(request)
    reader = _Reader(request.model, on_token)
    try:
        client = await asyncio.to_thread(client_for, config, limits.connect, limits.read)
        try:
            await _stream(client, params, reader)
        except ClientError as exc:
            if not not_streamable(exc) or reader.parts or reader.tools:
                raise
            answer = await asyncio.to_thread(lambda: client.converse(**params))
            await _whole(answer, reader)
    except ProviderError:
        raise
    except Exception as exc:
        raise provider_error(exc, config.name) from None
    return reader.done()


async def _whole(answer: dict[str, Any], reader: _Reader) -> None:
    """Feed a Converse (not streamed) answer through the same reader."""
    content = ((answer.get("output") or {}).get("message") or {}).get("content") or []
    for index, block in enumerate(content):
        if "text" in block:
            delta = {"contentBlockIndex": index, "delta": {"text": block["text"]}}
            await reader.feed({"contentBlockDelta": delta})
        elif "toolUse" in block:
            use = block["toolUse"]
            reader.tools[index] = {**use, "json": json.dumps(use.get("input") or {})}
    reader.result.finish_reason = answer.get("stopReason")
    reader.usage(answer.get("usage") or {})
