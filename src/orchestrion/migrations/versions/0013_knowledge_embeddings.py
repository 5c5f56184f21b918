"""knowledge embeddings

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-10 09:00:00.000000

Semantic search over the knowledge graph: one vector per node and embedding model, as
little-endian float32 bytes (a BLOB on SQLite, BYTEA on PostgreSQL; no extension).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kg_embeddings",
        sa.Column("node_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["kg_nodes.id"],
            name=op.f("fk_kg_embeddings_node_id_kg_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("node_id", "model", name=op.f("pk_kg_embeddings")),
    )
    with op.batch_alter_table("kg_embeddings", schema=None) as batch_op:
        batch_op.create_index("ix_kg_embeddings_tenant_model", ["tenant_id", "model"])


def downgrade() -> None:
    with op.batch_alter_table("kg_embeddings", schema=None) as batch_op:
        batch_op.drop_index("ix_kg_embeddings_tenant_model")
    op.drop_table("kg_embeddings")
