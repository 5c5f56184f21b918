"""MCP clients for ``mcp`` steps: server configurations, a session pool, the step type."""

from orchestrion.engine.mcp.config import McpServerConfig
from orchestrion.engine.mcp.pool import McpCallError, McpPool, McpTimeout, McpUnavailable
from orchestrion.engine.mcp.servers import McpServers, TenantLookup, UnknownServer, check_url

__all__ = [
    "McpCallError",
    "McpPool",
    "McpServerConfig",
    "McpServers",
    "McpTimeout",
    "McpUnavailable",
    "TenantLookup",
    "UnknownServer",
    "check_url",
]
