"""How to reach one MCP server: a command to spawn (stdio) or a URL (HTTP).

A configuration model only (the settings read it); the clients are in ``orchestrion.engine.mcp``.
"""

from __future__ import annotations

import json
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

Transport = Literal["stdio", "streamable_http", "sse"]


class McpServerConfig(BaseModel):
    """One MCP server: ``command`` (spawned, stdio) or ``url`` (streamable HTTP or SSE).

    ``transport`` is inferred when omitted: ``stdio`` for a command, ``sse`` for a URL whose
    path ends in ``/sse`` (servers of the older HTTP+SSE transport), else ``streamable_http``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: list[str] | None = Field(
        default=None, min_length=1, description="Program and arguments to spawn (stdio)."
    )
    env: dict[str, str] | None = Field(
        default=None,
        description="Variables added to the spawned program's minimal environment "
        "(the platform's own environment is not passed on).",
    )
    cwd: str | None = Field(default=None, description="Working directory of the spawned program.")
    url: str | None = Field(default=None, min_length=1, description="http(s) URL of the server.")
    transport: Transport | None = Field(
        default=None, description="stdio, streamable_http or sse (inferred when empty)."
    )
    headers: dict[str, str] | None = Field(
        default=None, description="HTTP headers sent to a URL server (e.g. Authorization)."
    )

    @model_validator(mode="after")
    def _one_way_in(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either 'command' or 'url'")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"not an http(s) URL: {self.url!r}")
            import httpx  # loaded when a URL is checked: the CLI starts without it

            try:
                # What the client would refuse later (control characters, a host no DNS
                # name can spell) is refused here, as a 422 rather than a crash.
                httpx.URL(self.url)
                parts.hostname.encode("idna")
            except (httpx.InvalidURL, UnicodeError) as exc:
                raise ValueError(f"not a valid URL: {exc}") from None
            if self.transport == "stdio" or self.env is not None or self.cwd is not None:
                raise ValueError("'env', 'cwd' and transport 'stdio' go with 'command' only")
        elif self.transport not in (None, "stdio") or self.headers is not None:
            raise ValueError("a 'command' server talks stdio and takes no 'headers'")
        return self

    @property
    def kind(self) -> Transport:
        """The transport used, explicit or inferred."""
        if self.transport is not None:
            return self.transport
        if self.command is not None:
            return "stdio"
        path = urlsplit(self.url or "").path.rstrip("/")
        return "sse" if path.endswith("/sse") else "streamable_http"

    def key(self) -> str:
        """A canonical string: equal configurations share one pooled session."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        """Where the server is, for messages (never the headers or the environment)."""
        if self.command is not None:
            return f"command {self.command[0]!r}"
        return f"{self.kind} {self.url}"
