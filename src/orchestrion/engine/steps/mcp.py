"""The ``mcp`` step: call one tool of an MCP server.

Output ``{"content": [...], "structured"?: {...}, "is_error": bool}``: a tool that reports
an error (``isError``) is an output, not a failed step, so a workflow can look at it (or
hand it to a model); a server that cannot be reached, a timeout, or a protocol error
fails the step (transport problems and timeouts are retried under the step's policy).
"""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrion.engine.mcp.pool import McpCallError, McpTimeout, McpUnavailable
from orchestrion.engine.mcp.servers import UnknownServer
from orchestrion.engine.netguard import BlockedDestination
from orchestrion.engine.outcomes import Failed, Outcome, StepCall, Succeeded
from orchestrion.engine.registry import StepType, expr_or
from orchestrion.engine.requirements import MCP

_NAME: dict[str, Any] = {"type": "string", "minLength": 1}


class McpStep(StepType):
    """Call ``tool`` on the MCP server named ``server`` with ``arguments``."""

    name = "mcp"
    description = (
        "Call `tool` on MCP server `server` with `arguments`; "
        "output {content, structured?, is_error}."
    )
    with_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "server": _NAME,
            "tool": _NAME,
            "arguments": expr_or({"type": "object"}),
            "timeout": expr_or({"type": "number", "exclusiveMinimum": 0}),
        },
        "required": ["server", "tool"],
        "additionalProperties": False,
    }
    requires = (MCP,)

    async def run(self, call: StepCall) -> Outcome:
        """Resolve the server, call the tool through the pool, shape the result."""
        servers = call.resources.get(MCP)
        if servers is None:
            return Failed("MCP is not available in this process", retryable=False)
        spec = call.evaluated()
        server, tool = str(spec["server"]), str(spec["tool"])
        arguments = spec.get("arguments") or {}
        if not isinstance(arguments, dict):
            return Failed("'arguments' must be an object", retryable=False)
        timeout = spec.get("timeout") or servers.call_timeout
        if not isinstance(timeout, int | float) or timeout <= 0:
            return Failed(f"'timeout' must be a number > 0, got {timeout!r}", retryable=False)
        try:
            config = await servers.resolve(call.tenant_id, server)
        except (UnknownServer, BlockedDestination) as exc:
            return Failed(str(exc), retryable=False)
        where = f"{server}/{tool}"
        try:
            result = await servers.pool.call_tool(config, tool, arguments, seconds=float(timeout))
        except McpTimeout as exc:
            return Failed(f"{where}: {exc}")
        except McpUnavailable as exc:
            return Failed(f"{where}: {exc}")
        except McpCallError as exc:
            return Failed(f"{where}: {exc}", retryable=exc.retryable, details={"code": exc.code})
        output: dict[str, Any] = {
            "content": [
                block.model_dump(mode="json", by_alias=True, exclude_none=True)
                for block in result.content
            ],
            "is_error": bool(result.is_error),
        }
        if result.structured_content is not None:
            output["structured"] = result.structured_content
        return Succeeded(output)
