"""MCP servers' tools offered to ``llm`` and ``agent`` steps (a ToolProvider).

An entry ``{"mcp": "<server>"}`` offers every tool of the server, ``{"mcp": "<server>",
"tool": "<name>", "name"?, "description"?}`` one of them (renamed, or described anew, if
asked). Servers are resolved like the ``mcp`` step's: the platform's first, then the
tenant's, whose URLs pass the private-range guard at every listing and every call.

A call's answer goes to the model as text when it is only text, as its structured
content when it has some, else as its content blocks; a tool that reports an error
(``isError``) is a ToolError, which the model is told about.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from orchestrion.engine.llm.backend import BoundTool, ToolError
from orchestrion.engine.llm.types import ToolSpec
from orchestrion.engine.mcp.pool import McpCallError, McpTimeout, McpUnavailable
from orchestrion.engine.mcp.servers import McpServers, UnknownServer
from orchestrion.engine.netguard import BlockedDestination
from orchestrion.engine.requirements import MCP

if TYPE_CHECKING:
    from mcp_types import CallToolResult

    from orchestrion.engine.outcomes import StepCall
    from orchestrion.kernel.mcp_config import McpServerConfig

#: What model APIs accept as a function name (OpenAI, Anthropic and Bedrock alike).
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def _tool_name(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("_")[:64] or "tool"


class McpTools:
    """Tools of MCP servers, for ``tools`` entries carrying ``mcp``."""

    key = "mcp"

    def _servers(self, call: StepCall) -> McpServers:
        servers = call.resources.get(MCP)
        if servers is None:
            raise ToolError("MCP is not available in this process")
        return servers

    async def _resolve(self, call: StepCall, server: str) -> McpServerConfig:
        try:
            return await self._servers(call).resolve(call.tenant_id, server)
        except (UnknownServer, BlockedDestination) as exc:
            raise ToolError(str(exc)) from None

    async def describe(self, call: StepCall, refs: Sequence[Mapping[str, Any]]) -> list[BoundTool]:
        """The tools each entry names, with their input schemas (one listing per server)."""
        servers = self._servers(call)
        listed: dict[str, dict[str, Any]] = {}
        bound: dict[str, BoundTool] = {}
        for ref in refs:
            server = str(ref["mcp"])
            if server not in listed:
                config = await self._resolve(call, server)
                try:
                    tools = await servers.pool.list_tools(config, seconds=servers.call_timeout)
                except (McpUnavailable, McpTimeout) as exc:
                    raise ToolError(f"MCP server {server!r}: {exc}", retryable=True) from None
                except McpCallError as exc:
                    raise ToolError(f"MCP server {server!r}: {exc}") from None
                listed[server] = {tool.name: tool for tool in tools}
            offered = listed[server]
            wanted = ref.get("tool")
            if wanted is not None and str(wanted) not in offered:
                raise ToolError(f"MCP server {server!r} has no tool named {wanted!r}")
            for tool in [offered[str(wanted)]] if wanted is not None else offered.values():
                alone = wanted is not None
                name = _tool_name(str(ref.get("name") or tool.name) if alone else tool.name)
                if name in bound:
                    raise ToolError(
                        f"two tools are called {name!r}: give one a 'name' of its own "
                        f'({{"mcp": {server!r}, "tool": {tool.name!r}, "name": "..."}})'
                    )
                description = (ref.get("description") if alone else None) or (
                    tool.description or tool.title or tool.name
                )
                parameters = dict(tool.input_schema or {}) or {"type": "object"}
                spec = ToolSpec(name=name, description=str(description), parameters=parameters)
                bound[name] = BoundTool(
                    spec=spec, provider=self.key, ref={"mcp": server, "tool": tool.name}
                )
        return list(bound.values())

    async def invoke(self, call: StepCall, tool: BoundTool, arguments: dict[str, Any]) -> Any:
        """Call the tool through the pooled session; its answer for the model."""
        servers = self._servers(call)
        server, name = str(tool.ref["mcp"]), str(tool.ref["tool"])
        config = await self._resolve(call, server)
        where = f"{server}/{name}"
        try:
            result = await servers.pool.call_tool(
                config, name, arguments, seconds=servers.call_timeout
            )
        except (McpUnavailable, McpTimeout, McpCallError) as exc:
            raise ToolError(f"{where}: {exc}") from None
        return answer(result, where)


def answer(result: CallToolResult, where: str) -> Any:
    """Text, structured content or content blocks (ToolError for ``isError``)."""
    blocks = [b.model_dump(mode="json", by_alias=True, exclude_none=True) for b in result.content]
    texts = [str(b.get("text", "")) for b in blocks if b.get("type") == "text"]
    if result.is_error:
        raise ToolError(f"{where}: " + ("\n".join(texts) or "the tool reported an error"))
    if result.structured_content is not None:
        return result.structured_content
    if len(texts) == len(blocks):
        return "\n".join(texts)
    return {"content": blocks}
