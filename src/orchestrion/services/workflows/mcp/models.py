"""Tables of the MCP servers tenants register (``wf_mcp_servers``)."""

from __future__ import annotations

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin, TimestampMixin


class McpServer(IdMixin, TimestampMixin, Base):
    """An MCP server a tenant registered for its ``mcp`` steps: a URL, never a command."""

    __tablename__ = "wf_mcp_servers"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    transport: Mapped[str | None] = mapped_column(String(32))
    #: Request headers (credentials, mostly) as JSON, encrypted under the platform secret.
    headers: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(36))
