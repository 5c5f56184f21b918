"""The table of WebAssembly plugins.

A plugin is immutable: a new module is a new ``version`` row, so a call always runs the
bytes its ``sha256`` names (the compiled-module cache relies on that). The module's bytes
load only when asked for (``deferred`` with ``raiseload``): lists and lookups never drag
megabytes of WebAssembly out of the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin, JSONType
from orchestrion.kernel.ids import utcnow

NAME_LENGTH = 100
VERSION_LENGTH = 64


class ContentPlugin(IdMixin, Base):
    """An uploaded Extism module, its exported functions and the limits it asked for."""

    __tablename__ = "content_plugins"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", "version"),
        Index("ix_content_plugins_tenant_created", "tenant_id", "created_at"),
        Index("ix_content_plugins_created_by", "created_by"),
    )

    tenant_id: Mapped[str] = mapped_column(String(36))
    #: Who uploaded it (the principal's subject); NULL for plugins older than the column.
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    version: Mapped[str] = mapped_column(String(VERSION_LENGTH))
    description: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    module: Mapped[bytes] = mapped_column(LargeBinary, deferred=True, deferred_raiseload=True)
    functions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    #: What the upload asked for, already lowered to the platform's maxima of that time.
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
