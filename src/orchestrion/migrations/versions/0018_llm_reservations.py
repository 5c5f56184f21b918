"""llm reservations

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 15:30:00.000000

USD set aside for model calls in flight, so that budgets hold under parallel steps on
several workers (reserved before a call, settled after, released on failure).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orchestrion.kernel.db.base import UTCDateTime

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_reservations",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("workflow_id", sa.String(length=36), nullable=False),
        sa.Column("root_execution_id", sa.String(length=36), nullable=False),
        sa.Column("execution_id", sa.String(length=36), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("amount_usd", sa.Float(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("settled_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_reservations")),
    )
    with op.batch_alter_table("llm_reservations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_llm_reservations_tenant_expires", ["tenant_id", "expires_at"], unique=False
        )
        batch_op.create_index("ix_llm_reservations_root", ["root_execution_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("llm_reservations", schema=None) as batch_op:
        batch_op.drop_index("ix_llm_reservations_root")
        batch_op.drop_index("ix_llm_reservations_tenant_expires")
    op.drop_table("llm_reservations")
