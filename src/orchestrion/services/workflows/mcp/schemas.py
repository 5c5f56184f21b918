"""Request bodies and response shapes of the MCP servers tenants register.

Responses are built by :mod:`.service` (``to_dict``, ``server_list``, ``tools``); these
models document them exactly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class McpServerCreate(BaseModel):
    """A tenant's MCP server: a URL (a tenant never makes the platform spawn a command)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN, description="The name `mcp` steps use as `server`.")
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="http(s) URL of the server.",
        # Checked by the server config (422 naming it); stated here for clients.
        json_schema_extra={"pattern": "^https?://[^/?#\\s]+"},
    )
    transport: Literal["streamable_http", "sse"] | None = Field(
        default=None, description="Inferred when empty: `sse` for a path ending in /sse."
    )
    headers: dict[str, str] | None = Field(
        default=None, description="Headers sent to the server (write-only, stored encrypted)."
    )


class McpServerRead(BaseModel):
    """A tenant's server (its headers are never shown, only whether there are any)."""

    name: str
    scope: Literal["tenant"]
    url: str
    transport: Literal["streamable_http", "sse"] | None
    has_headers: bool
    created_by: str | None
    created_at: datetime


class PlatformMcpServerRead(BaseModel):
    """A server from the platform's settings: its name only."""

    name: str
    scope: Literal["platform"]


McpServerEntry = Annotated[PlatformMcpServerRead | McpServerRead, Field(discriminator="scope")]


class McpToolRead(BaseModel):
    """A tool as the server describes it (MCP ``Tool``; keys the server leaves out are absent)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str
    title: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] = Field(alias="inputSchema")
    output_schema: dict[str, Any] | None = Field(default=None, alias="outputSchema")
    annotations: dict[str, Any] | None = None
    meta: dict[str, Any] | None = Field(default=None, alias="_meta")
