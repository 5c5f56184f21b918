"""execution states version

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04 04:30:00.000000

``wf_executions.states_version``: bumped by every transaction that changes one of the
execution's step states, so a worker can keep the states between its transactions and
reload them only when another transaction (another worker, another process) changed them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wf_executions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("states_version", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("wf_executions", schema=None) as batch_op:
        batch_op.drop_column("states_version")
