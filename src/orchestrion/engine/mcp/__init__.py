"""MCP clients for ``mcp`` steps: server configurations (:mod:`.config`), a session pool
(:mod:`.pool`), name resolution (:mod:`.servers`) and the step type (:mod:`.step`).

Only the configuration is imported here: the settings need it in every process, the MCP
SDK only the processes that call servers.
"""

from orchestrion.engine.mcp.config import McpServerConfig

__all__ = ["McpServerConfig"]
