"""Tables of the knowledge service.

Nodes and edges carry the tenant; an edge's ends are nodes (foreign keys that cascade,
so deleting a node deletes its edges and its search terms in the database itself).
``kg_terms`` is the keyword index (one row per node and term), ``kg_embeddings`` the
semantic one (a node's name and text as a ``float32`` vector, per embedding model),
``kg_graphs`` counts each tenant's changes so loaded graphs and vector matrices can be
reused until the next one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrion.kernel.db.base import Base, IdMixin, TimestampMixin
from orchestrion.kernel.ids import utcnow

TYPE_LENGTH = 100
NAME_LENGTH = 500
TERM_LENGTH = 64
MODEL_LENGTH = 200


class KgNode(IdMixin, TimestampMixin, Base):
    """A typed node with a name, free text (searched) and JSON properties."""

    __tablename__ = "kg_nodes"
    __table_args__ = (
        Index("ix_kg_nodes_tenant_type", "tenant_id", "type"),
        Index("ix_kg_nodes_tenant_name", "tenant_id", "name"),
        Index("ix_kg_nodes_tenant_created", "tenant_id", "created_at"),
    )

    tenant_id: Mapped[str] = mapped_column(String(36))
    type: Mapped[str] = mapped_column(String(TYPE_LENGTH))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    text: Mapped[str] = mapped_column(Text, default="")
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Weighted token count of name and text: the document length of BM25.
    length: Mapped[int] = mapped_column(Integer, default=0)


class KgEdge(IdMixin, Base):
    """A typed, weighted, directed edge from ``source`` to ``target``."""

    __tablename__ = "kg_edges"
    __table_args__ = (
        Index("ix_kg_edges_source_type", "source", "type"),
        Index("ix_kg_edges_target_type", "target", "type"),
        Index("ix_kg_edges_tenant_created", "tenant_id", "created_at"),
    )

    tenant_id: Mapped[str] = mapped_column(String(36))
    source: Mapped[str] = mapped_column(String(36), ForeignKey("kg_nodes.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(36), ForeignKey("kg_nodes.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(TYPE_LENGTH))
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KgTerm(Base):
    """One posting of the keyword index: ``term`` occurs ``tf`` times (weighted) in a node."""

    __tablename__ = "kg_terms"
    __table_args__ = (Index("ix_kg_terms_tenant_term", "tenant_id", "term"),)

    node_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("kg_nodes.id", ondelete="CASCADE"), primary_key=True
    )
    term: Mapped[str] = mapped_column(String(TERM_LENGTH), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    tf: Mapped[int] = mapped_column(Integer)


class KgEmbedding(Base):
    """A node's vector under one embedding model (``model`` is the embedder's name, so
    vectors of a previous model are never compared with the current one's)."""

    __tablename__ = "kg_embeddings"
    __table_args__ = (Index("ix_kg_embeddings_tenant_model", "tenant_id", "model"),)

    node_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("kg_nodes.id", ondelete="CASCADE"), primary_key=True
    )
    model: Mapped[str] = mapped_column(String(MODEL_LENGTH), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    #: Little-endian float32, 4 bytes per dimension.
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class KgGraph(Base):
    """A tenant's graph revision: bumped by every change to its nodes' set, a node's
    name or text, or its edges."""

    __tablename__ = "kg_graphs"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
