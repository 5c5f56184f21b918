"""Tables of the content service (``content_*``).

A document keeps who uploaded it (``created_by``, anonymised when they are erased:
:mod:`.personal`), its original bytes (processing may happen later, on a worker), its
extracted text and analysis. Chunks are its text cut for retrieval, each with its
offsets into that text and, when an embedder is configured, its vector (float32 bytes).
Tags are rows of their own so the ``tag`` filter is an indexed lookup.

The keyword index over chunk text is not a model: the migration creates it per
database (an FTS5 table kept by triggers on SQLite, a GIN-indexed stored column
``fts_vector`` on PostgreSQL), see :data:`UNMANAGED`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin, JSONType, TimestampMixin
from orchestrion.kernel.ids import utcnow

TITLE_LENGTH = 500
TAG_LENGTH = 100
#: Database objects the migration makes that no model declares (the keyword index).
FTS_TABLE = "content_chunks_fts"
UNMANAGED = ("content_chunks_fts", "ix_content_chunks_fts", "fts_vector")


class ContentDocument(IdMixin, TimestampMixin, Base):
    """An ingested document: its bytes, and once processed its text and analysis."""

    __tablename__ = "content_documents"
    __table_args__ = (
        Index("ix_content_documents_tenant_created", "tenant_id", "created_at"),
        Index("ix_content_documents_tenant_status", "tenant_id", "status"),
        Index("ix_content_documents_tenant_type", "tenant_id", "content_type"),
        Index("ix_content_documents_created_by", "created_by"),
    )

    tenant_id: Mapped[str] = mapped_column(String(36))
    #: Who uploaded it (the principal's subject); NULL for documents older than the column.
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    title: Mapped[str] = mapped_column(String(TITLE_LENGTH))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    text: Mapped[str | None] = mapped_column(Text)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class ContentTag(Base):
    """One tag of a document."""

    __tablename__ = "content_tags"
    __table_args__ = (Index("ix_content_tags_tenant_tag", "tenant_id", "tag"),)

    document_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("content_documents.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(TAG_LENGTH), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))


class ContentChunk(Base):
    """A piece of a document's text: ``text == document.text[start:end]``."""

    __tablename__ = "content_chunks"
    __table_args__ = (
        Index("ix_content_chunks_document_index", "document_id", "chunk_index", unique=True),
        Index("ix_content_chunks_tenant_id", "tenant_id", "id"),
    )

    # An integer key: the FTS5 table refers to chunks by rowid.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("content_documents.id", ondelete="CASCADE")
    )
    tenant_id: Mapped[str] = mapped_column(String(36))
    chunk_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    start: Mapped[int] = mapped_column("start_offset", Integer)
    end: Mapped[int] = mapped_column("end_offset", Integer)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)


class ContentRevision(Base):
    """A tenant's chunk revision: bumped whenever its chunks change, so loaded vectors
    are reused exactly until then."""

    __tablename__ = "content_revisions"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
