"""The platform's :class:`~orchestrion.engine.llm.backend.LlmBackend`: providers from
settings and tenants, budgets from the database, tokens to watchers, workflows and MCP
servers' tools as tools.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.fernet import Fernet

from orchestrion.engine import (
    CHILDREN,
    LLM,
    BoundTool,
    ChildWorkflowError,
    Execution,
    McpTools,
    PriceTable,
    ProviderConfig,
    StepCall,
    TokenCounter,
    ToolError,
    ToolProvider,
    ToolSpec,
)
from orchestrion.kernel.db.engine import Database
from orchestrion.services.workflows.definitions import service as definitions
from orchestrion.services.workflows.llm import service as llm_service
from orchestrion.settings import LlmSettings

if TYPE_CHECKING:
    from orchestrion.engine import Engine
    from orchestrion.services.workflows.executions.live import LivePublisher
    from orchestrion.services.workflows.llm.token_bus import TokenBatcher

#: Seconds a settled reservation counts at most: the ledger records its attempt in far less.
SETTLED_HOLD = 3600.0
#: Added to a call's longest possible duration for how long its reservation counts.
CALL_HOLD_MARGIN = 300.0
_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class TokenHub:
    """Token chunks of the executions running in this process, for SSE watchers."""

    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    def watch(self, execution_id: str) -> asyncio.Queue[dict[str, Any]]:
        """A queue receiving this execution's tokens from now on."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(10_000)
        self._watchers[execution_id].add(queue)
        return queue

    def unwatch(self, execution_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop receiving."""
        watchers = self._watchers.get(execution_id)
        if watchers is not None:
            watchers.discard(queue)
            if not watchers:
                self._watchers.pop(execution_id, None)

    def publish(self, execution_id: str, token: dict[str, Any]) -> bool:
        """Offer a token to every watcher (dropped for one that is 10,000 behind)."""
        watchers = self._watchers.get(execution_id, ())
        for queue in watchers:
            if not queue.full():
                queue.put_nowait(token)
        return bool(watchers)


class WorkflowTools:
    """Tools that are workflows: ``{"workflow_id", "name"?, "description"?}`` entries.

    A call runs the workflow as a child execution of the calling step (its usage adds up
    to the caller's) and waits for its outputs.
    """

    key = "workflow_id"

    def __init__(self, backend: PlatformLlm) -> None:
        self.backend = backend

    async def describe(self, call: StepCall, refs: Sequence[Mapping[str, Any]]) -> list[BoundTool]:
        """One tool per entry; its parameters are the workflow's inputs schema."""
        tools: list[BoundTool] = []
        async with self.backend.database.session() as session:
            for ref in refs:
                workflow_id = str(ref["workflow_id"])
                workflow = await definitions.find_workflow(
                    session, tenant_id=call.tenant_id, workflow_id=workflow_id
                )
                if workflow is None:
                    raise ToolError(f"tool workflow {workflow_id} not found")
                name = str(ref.get("name") or workflow.name)
                name = _TOOL_NAME.sub("_", name).strip("_")[:64] or f"workflow_{workflow.id[:8]}"
                parameters = workflow.definition.get("inputs") or {"type": "object"}
                description = str(ref.get("description") or workflow.description or workflow.name)
                spec = ToolSpec(name=name, description=description, parameters=parameters)
                tools.append(BoundTool(spec=spec, provider="workflow", ref=dict(ref)))
        return tools

    async def invoke(self, call: StepCall, tool: BoundTool, arguments: dict[str, Any]) -> Any:
        """Run the workflow with ``arguments`` as inputs, as a child of the step; its outputs."""
        try:
            children = call.need(CHILDREN)
        except LookupError:
            raise ToolError("workflow tools are not available here") from None
        try:
            return await children.run(
                call,
                workflow_id=str(tool.ref["workflow_id"]),
                inputs=arguments,
                seconds=self.backend.tool_timeout,
            )
        except ChildWorkflowError as exc:
            raise ToolError(str(exc)) from None


class PlatformLlm:
    """Providers (settings, then each tenant's), prices, budgets, token push and tools."""

    def __init__(
        self,
        settings: LlmSettings,
        database: Database,
        fernet: Fernet,
        http: httpx.AsyncClient,
        *,
        publisher: LivePublisher | None = None,
        batcher: TokenBatcher | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.fernet = fernet
        self.http = http
        self.prices = PriceTable(settings.pricing)
        self.counter = TokenCounter(settings.tiktoken_file)
        self.timeout = httpx.Timeout(
            settings.timeout_seconds, connect=settings.connect_timeout_seconds
        )
        self.max_retries = settings.max_retries
        self.max_retry_after = settings.max_retry_after_seconds
        self.assumed_output_tokens = settings.assumed_output_tokens
        self.tool_timeout = settings.timeout_seconds
        #: How long an unsettled reservation counts: past it, its worker surely died.
        self.call_hold = settings.timeout_seconds * (settings.max_retries + 1) + CALL_HOLD_MARGIN
        self.platform = {
            name: ProviderConfig(
                name=name,
                kind=p.kind,
                base_url=p.base_url,
                api_key=p.api_key.get_secret_value() if p.api_key else None,
                trusted=True,
                region=p.region,
            )
            for name, p in settings.providers.items()
        }
        # MCP tools reach their servers through the step's resources (``MCP``).
        self.tools: dict[str, ToolProvider] = {"workflow": WorkflowTools(self), "mcp": McpTools()}
        self.hub = TokenHub()
        #: In process: chunks go to realtime over its internal endpoint.
        self.publisher = publisher
        #: With a broker: chunks go to the bus for realtime and other processes' SSE.
        self.batcher = batcher

    async def provider(self, tenant_id: str, name: str | None) -> ProviderConfig | None:
        """A tenant's provider of that name first, then the platform's; None if neither."""
        async with self.database.session() as session:
            mine = await llm_service.list_providers(session, tenant_id=tenant_id)
        if name is None:
            name = self.settings.default_provider or next(iter(self.platform), None)
            if name is None and mine:
                name = mine[0].name
        for row in mine:
            if row.name == name:
                return ProviderConfig(
                    name=row.name,
                    kind=row.kind,
                    base_url=row.base_url,
                    api_key=llm_service.reveal(self.fernet, row),
                    trusted=False,
                )
        return self.platform.get(name) if name else None

    async def reserve_budget(self, call: StepCall, estimate_usd: float) -> str | None:
        """Set ``estimate_usd`` aside against the tenant's budgets (BudgetExceeded if
        it would cross one); the reservation to settle or release, None without budgets.

        Committed at once, so steps on other workers count it from now on.
        """
        async with self.database.session() as session:
            execution = await session.get(Execution, call.execution_id)
            if execution is None:
                return None
            root = execution
            for _ in range(16):
                if root.parent_execution_id is None:
                    break
                root = await session.get(Execution, root.parent_execution_id) or root
            key = llm_service.CallKey(
                tenant_id=call.tenant_id,
                workflow_id=execution.workflow_id,
                root_execution_id=root.id,
                execution_id=execution.id,
                step_id=call.step_id,
                iteration=-1 if call.index is None else call.index,
                attempt=call.attempt,
            )
            return await llm_service.reserve(
                session, call=key, estimate_usd=estimate_usd, hold_seconds=self.call_hold
            )

    async def settle_budget(self, reservation: str | None, cost_usd: float) -> None:
        """The call ended: keep its real cost reserved until the ledger records it."""
        if reservation is None:
            return
        async with self.database.session() as session:
            await llm_service.settle(
                session, reservation_id=reservation, cost_usd=cost_usd, hold_seconds=SETTLED_HOLD
            )

    async def release_budget(self, reservation: str | None) -> None:
        """The call failed: free what it reserved."""
        if reservation is None:
            return
        async with self.database.session() as session:
            await llm_service.release(session, reservation_id=reservation)

    async def publish_token(self, call: StepCall, text: str) -> None:
        """To SSE watchers in this process and to the realtime ``execution:`` channel.

        In-process (no broker) realtime gets the chunk over HTTP; with a broker it is
        batched onto the bus, which also reaches other processes' SSE watchers.
        """
        token: dict[str, Any] = {"step_id": call.step_id, "text": text}
        if call.index is not None:
            token["index"] = call.index
        self.hub.publish(call.execution_id, token)
        if self.batcher is not None:
            self.batcher.offer(call.tenant_id, call.execution_id, call.step_id, call.index, text)
        if self.publisher is not None:
            self.publisher.offer(
                {
                    "tenant_id": call.tenant_id,
                    "channel": f"execution:{call.execution_id}",
                    "ephemeral": True,
                    "data": {"step_id": call.step_id, "text": text},
                }
            )

    def flush_tokens(self) -> None:
        """Send batched chunks now (a model call ended)."""
        if self.batcher is not None:
            self.batcher.flush()


def platform_llm(engine: Engine) -> PlatformLlm:
    """The engine's LLM backend (provided by the workflows service's runtime)."""
    llm = engine.resources.get(LLM)
    if not isinstance(llm, PlatformLlm):
        raise RuntimeError("this engine has no platform LLM backend")
    return llm
