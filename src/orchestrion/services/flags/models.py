"""Tables of the flags service.

A flag belongs to one tenant and is named by its ``key`` there (unique per tenant).
``variants`` and ``rules`` are JSON lists whose order matters: variants are laid out on
the bucket range in that order, and the first matching rule wins.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin, JSONType, TimestampMixin

KEY_LENGTH = 100


class FlagsFlag(IdMixin, TimestampMixin, Base):
    """One feature flag of a tenant."""

    __tablename__ = "flags_flags"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    tenant_id: Mapped[str] = mapped_column(String(36))
    key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Percent of principals (0-100, two decimals) the flag is on for, absent a rule.
    rollout: Mapped[float] = mapped_column(Float, default=0.0)
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    #: Counts changes: events carry it so a cache can tell an old event from a new one.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
