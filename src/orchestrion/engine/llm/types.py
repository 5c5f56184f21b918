"""What a provider call takes and gives, independent of the wire protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

#: Called with each chunk of text as it arrives.
TokenSink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ProviderConfig:
    """Where and how to reach one provider.

    ``trusted`` providers come from settings; a tenant's may not point into private
    networks (checked like ``http`` steps' destinations).
    """

    name: str
    kind: str
    base_url: str
    api_key: str | None = None
    trusted: bool = True
    #: AWS region of a ``bedrock`` provider (else taken from its host, else us-east-1).
    region: str | None = None


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: name, description and JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for; ``arguments`` already parsed from JSON."""

    id: str
    name: str
    arguments: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The public shape in step outputs."""
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass
class ChatRequest:
    """One chat turn to send.

    ``messages`` use a neutral shape: ``{"role": "user"|"assistant"|"tool", "content": str}``,
    an assistant message may carry ``tool_calls`` (:class:`ToolCall` dicts) and a tool
    message carries ``tool_call_id`` (and ``name``).
    """

    model: str
    messages: list[dict[str, Any]]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    response_schema: dict[str, Any] | None = None


@dataclass
class ChatResult:
    """What came back. ``reported`` is False when the provider sent no usage."""

    text: str
    model: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    reported: bool = False
    finish_reason: str | None = None


class ProviderError(Exception):
    """A failed call: ``status`` (None for network errors), ``retry_after`` seconds if told."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable
