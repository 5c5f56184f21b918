"""What the platform lends ``llm`` and ``agent`` steps (through ``StepServices.llm``).

Step types never touch the database; the workflows service implements
:class:`LlmBackend` with it: tenant providers, budgets, pushing tokens to watchers.
Tools come from :class:`ToolProvider` objects: workflows (the workflows service) and
MCP servers' tools (:mod:`orchestrion.engine.mcp.tools`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from orchestrion.engine.llm.pricing import PriceTable
from orchestrion.engine.llm.tokens import TokenCounter
from orchestrion.engine.llm.types import ProviderConfig, ToolSpec

if TYPE_CHECKING:
    from orchestrion.engine.outcomes import StepCall


class BudgetExceeded(Exception):
    """A call would cross a budget; ``problem`` names it (RFC 9457 shape)."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(str(problem.get("detail")))
        self.problem = problem


class ToolError(Exception):
    """A tool call failed; the model is told and may try otherwise.

    Raised while binding tools (before any model call) it fails the step, retryably
    when ``retryable`` (an unreachable tool server, not an unknown one).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class BoundTool:
    """A tool as offered to a model, and which provider answers it."""

    spec: ToolSpec
    provider: str
    ref: Mapping[str, Any]


class ToolProvider(Protocol):
    """Turns ``tools`` entries of a step into callable tools."""

    #: The key an entry of ``tools`` carries to belong to this provider (``workflow_id``).
    key: str

    async def describe(self, call: StepCall, refs: Sequence[Mapping[str, Any]]) -> list[BoundTool]:
        """The tools these entries name (raises ToolError for an unknown one)."""
        ...

    async def invoke(self, call: StepCall, tool: BoundTool, arguments: dict[str, Any]) -> Any:
        """Run the tool; its JSON result (raises ToolError)."""
        ...


class LlmBackend(Protocol):
    """Providers, prices, budgets, token push and tools, for one tenant's step."""

    prices: PriceTable
    counter: TokenCounter
    http: httpx.AsyncClient
    timeout: httpx.Timeout
    max_retries: int
    max_retry_after: float
    #: Output tokens a budget check assumes when a step sets no ``max_tokens``.
    assumed_output_tokens: int
    tools: dict[str, ToolProvider]

    async def provider(self, tenant_id: str, name: str | None) -> ProviderConfig | None:
        """The provider called ``name`` (the tenant's first, then the platform's)."""
        ...

    async def reserve_budget(self, call: StepCall, estimate_usd: float) -> object:
        """Set ``estimate_usd`` aside for a call, atomically against every process's
        reservations; raise BudgetExceeded if it would cross a budget. Returns the
        reservation, which the caller settles or releases."""
        ...

    async def settle_budget(self, reservation: Any, cost_usd: float) -> None:
        """The call ended and cost ``cost_usd``: that, not the estimate, stays counted."""
        ...

    async def release_budget(self, reservation: Any) -> None:
        """The call failed: what it reserved is free again."""
        ...

    async def publish_token(self, call: StepCall, text: str) -> None:
        """Push a chunk of output to the execution's watchers (never stored)."""
        ...

    def flush_tokens(self) -> None:
        """A model call ended: send pushed chunks that wait in a batch now (never waits)."""
        ...
