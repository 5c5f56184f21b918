"""flags

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 15:45:00.000000

The flags service: feature flags of each tenant, with their variants and rules.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orchestrion.kernel.db.base import JSONType, UTCDateTime

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "flags_flags",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("rollout", sa.Float(), nullable=False),
        sa.Column("variants", JSONType, nullable=False),
        sa.Column("rules", JSONType, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flags_flags")),
        sa.UniqueConstraint("tenant_id", "key", name=op.f("uq_flags_flags_tenant_id_key")),
    )


def downgrade() -> None:
    op.drop_table("flags_flags")
