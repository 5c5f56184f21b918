"""MCP: the servers a tenant registers for `mcp` steps, and the platform as an MCP server."""
