"""active executions index

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 05:00:00.000000

Starting a root execution counts the tenant's unfinished ones (``max_active_executions``):
an index on (tenant_id, status) keeps that count off the tenant's finished history.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wf_executions", schema=None) as batch_op:
        batch_op.create_index("ix_wf_executions_tenant_status", ["tenant_id", "status"])


def downgrade() -> None:
    with op.batch_alter_table("wf_executions", schema=None) as batch_op:
        batch_op.drop_index("ix_wf_executions_tenant_status")
