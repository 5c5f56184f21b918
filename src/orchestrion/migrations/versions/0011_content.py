"""content

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 09:00:00.000000

Documents, their tags and chunks, and the tenants' chunk revisions. The keyword index
over chunk text is made by hand per database: on SQLite an FTS5 table (Porter stemming)
whose rows triggers keep equal to the chunks; on PostgreSQL a stored generated column
``fts_vector`` (``to_tsvector('english', text)``) with a GIN index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orchestrion.kernel.db.base import JSONType, UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE content_chunks_fts USING fts5("
    "text, content='content_chunks', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER content_chunks_fts_insert AFTER INSERT ON content_chunks BEGIN "
    "INSERT INTO content_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER content_chunks_fts_delete AFTER DELETE ON content_chunks BEGIN "
    "INSERT INTO content_chunks_fts(content_chunks_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER content_chunks_fts_update AFTER UPDATE OF text ON content_chunks BEGIN "
    "INSERT INTO content_chunks_fts(content_chunks_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); "
    "INSERT INTO content_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
)
# A stored vector, so a search neither re-parses the text of every matching chunk nor
# ranks from it (1.3 s per query at 10,000 chunks when it did; bench.content).
_POSTGRES_FTS = (
    "ALTER TABLE content_chunks ADD COLUMN fts_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
    "CREATE INDEX ix_content_chunks_fts ON content_chunks USING gin (fts_vector)",
)


def upgrade() -> None:
    op.create_table(
        "content_documents",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("analysis", JSONType, nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_documents")),
    )
    with op.batch_alter_table("content_documents", schema=None) as batch_op:
        batch_op.create_index(
            "ix_content_documents_tenant_created", ["tenant_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_content_documents_tenant_status", ["tenant_id", "status"], unique=False
        )
        batch_op.create_index(
            "ix_content_documents_tenant_type", ["tenant_id", "content_type"], unique=False
        )

    op.create_table(
        "content_revisions",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_content_revisions")),
    )
    op.create_table(
        "content_tags",
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["content_documents.id"],
            name=op.f("fk_content_tags_document_id_content_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("document_id", "tag", name=op.f("pk_content_tags")),
    )
    with op.batch_alter_table("content_tags", schema=None) as batch_op:
        batch_op.create_index("ix_content_tags_tenant_tag", ["tenant_id", "tag"], unique=False)

    op.create_table(
        "content_chunks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start_offset", sa.Integer(), nullable=False),
        sa.Column("end_offset", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["content_documents.id"],
            name=op.f("fk_content_chunks_document_id_content_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_chunks")),
    )
    with op.batch_alter_table("content_chunks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_content_chunks_document_index", ["document_id", "chunk_index"], unique=True
        )
        batch_op.create_index("ix_content_chunks_tenant_id", ["tenant_id", "id"], unique=False)

    statements = _SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else _POSTGRES_FTS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS content_chunks_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS content_chunks_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_content_chunks_fts")
        op.execute("ALTER TABLE content_chunks DROP COLUMN IF EXISTS fts_vector")
    with op.batch_alter_table("content_chunks", schema=None) as batch_op:
        batch_op.drop_index("ix_content_chunks_tenant_id")
        batch_op.drop_index("ix_content_chunks_document_index")

    op.drop_table("content_chunks")
    with op.batch_alter_table("content_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_content_tags_tenant_tag")

    op.drop_table("content_tags")
    op.drop_table("content_revisions")
    with op.batch_alter_table("content_documents", schema=None) as batch_op:
        batch_op.drop_index("ix_content_documents_tenant_type")
        batch_op.drop_index("ix_content_documents_tenant_status")
        batch_op.drop_index("ix_content_documents_tenant_created")

    op.drop_table("content_documents")
