"""Tables of the templates service.

A template belongs to the tenant that wrote it (``tenant_id``); starters belong to the
platform (:data:`PLATFORM_TENANT`, a tenant no user is in, so nobody edits them) and are
keyed by a stable ``slug``. The rating summary (``rating_count``, ``rating_average``) and
``installs`` are kept on the template row so lists sort by them in the database.
``tpl_versions`` keeps every version's content; ``tpl_tags`` makes the ``tag`` filter an
indexed lookup rather than a scan of JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin, JSONType, TimestampMixin
from orchestrion.kernel.ids import utcnow

#: The owner of the starter templates: not a tenant any user belongs to.
PLATFORM_TENANT = "platform"
NAME_LENGTH = 200
CATEGORY_LENGTH = 100
TAG_LENGTH = 100
SLUG_LENGTH = 100


class TplTemplate(IdMixin, TimestampMixin, Base):
    """A parameterised workflow definition with its marketplace figures."""

    __tablename__ = "tpl_templates"
    __table_args__ = (
        Index("ix_tpl_templates_tenant_created", "tenant_id", "created_at"),
        Index("ix_tpl_templates_visibility", "visibility"),
        Index("ix_tpl_templates_category", "category"),
    )

    tenant_id: Mapped[str] = mapped_column(String(36))
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: Set on starters only: what seeding matches on, whatever the name becomes.
    slug: Mapped[str | None] = mapped_column(String(SLUG_LENGTH), unique=True, nullable=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(CATEGORY_LENGTH))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    rating_average: Mapped[float] = mapped_column(Float, default=0.0)
    installs: Mapped[int] = mapped_column(Integer, default=0)


class TplVersion(Base):
    """The content of one version of a template, never changed once written."""

    __tablename__ = "tpl_versions"

    template_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tpl_templates.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(CATEGORY_LENGTH))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TplTag(Base):
    """One tag of a template (the ``tag`` filter)."""

    __tablename__ = "tpl_tags"
    __table_args__ = (Index("ix_tpl_tags_tag", "tag"),)

    template_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tpl_templates.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(TAG_LENGTH), primary_key=True)


class TplRating(Base):
    """One user's rating of a template: a new one from the same user replaces it."""

    __tablename__ = "tpl_ratings"

    template_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tpl_templates.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    stars: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
