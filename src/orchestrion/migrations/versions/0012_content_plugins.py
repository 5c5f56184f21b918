"""content plugins

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orchestrion.kernel.db.base import JSONType, UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "content_plugins",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("module", sa.LargeBinary(), nullable=False),
        sa.Column("functions", JSONType, nullable=False),
        sa.Column("limits", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_plugins")),
        sa.UniqueConstraint(
            "tenant_id",
            "name",
            "version",
            name=op.f("uq_content_plugins_tenant_id_name_version"),
        ),
    )
    with op.batch_alter_table("content_plugins", schema=None) as batch_op:
        batch_op.create_index(
            "ix_content_plugins_tenant_created", ["tenant_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("content_plugins", schema=None) as batch_op:
        batch_op.drop_index("ix_content_plugins_tenant_created")
    op.drop_table("content_plugins")
