"""trace context of tasks and executions

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 16:00:00.000000

The W3C ``traceparent`` a task was enqueued under (the worker that claims it continues
the trace) and the one an execution was started under (its API answer links the trace).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("kernel_tasks", "wf_executions")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    for table in reversed(_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("traceparent")
