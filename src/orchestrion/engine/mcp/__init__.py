"""MCP clients for ``mcp`` steps: a session pool (:mod:`.pool`), name resolution
(:mod:`.servers`) and MCP tools for models (:mod:`.tools`); server configurations are
:mod:`orchestrion.kernel.mcp_config` (the settings read them in every process, while the
MCP SDK is only loaded by the processes that call servers)."""
