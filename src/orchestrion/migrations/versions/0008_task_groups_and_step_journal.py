"""task groups and the step journal

Tasks get indexed ``group_key``/``kind``/``subject`` columns (the engine's group
operations used to match key strings with LIKE); steps get a journal of recorded parts
(a loop's iterations); model usage is keyed by journal part too.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orchestrion.kernel.db.base import JSONType, UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_tasks = sa.table(
    "kernel_tasks",
    sa.column("id", sa.String),
    sa.column("queue", sa.String),
    sa.column("payload", JSONType),
    sa.column("group_key", sa.String),
    sa.column("kind", sa.String),
    sa.column("subject", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("kernel_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("kind", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("subject", sa.String(length=128), nullable=True))
        batch_op.create_index(
            "ix_kernel_tasks_group", ["group_key", "kind", "subject"], unique=False
        )
    # Label the engine's tasks that wait in the queue during the upgrade.
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_tasks.c.id, _tasks.c.payload).where(_tasks.c.queue == "engine")
    ).all()
    for task_id, payload in rows:
        payload = payload or {}
        bind.execute(
            _tasks.update()
            .where(_tasks.c.id == task_id)
            .values(
                group_key=payload.get("execution_id"),
                kind=payload.get("kind"),
                subject=payload.get("step_id"),
            )
        )

    op.create_table(
        "wf_step_journal",
        sa.Column("execution_id", sa.String(length=36), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("output", JSONType, nullable=True),
        sa.Column("usage", JSONType, nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["wf_executions.id"],
            name=op.f("fk_wf_step_journal_execution_id_wf_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "execution_id", "step_id", "iteration", "part", name=op.f("pk_wf_step_journal")
        ),
    )

    with op.batch_alter_table("wf_llm_usage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("part", sa.Integer(), server_default="-1", nullable=False))
        batch_op.drop_index("ux_wf_llm_usage_attempt")
        batch_op.create_index(
            "ux_wf_llm_usage_attempt",
            ["execution_id", "step_id", "iteration", "attempt", "part", "provider", "model"],
            unique=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("wf_llm_usage", schema=None) as batch_op:
        batch_op.drop_index("ux_wf_llm_usage_attempt")
        batch_op.create_index(
            "ux_wf_llm_usage_attempt",
            ["execution_id", "step_id", "iteration", "attempt", "provider", "model"],
            unique=True,
        )
        batch_op.drop_column("part")
    op.drop_table("wf_step_journal")
    with op.batch_alter_table("kernel_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_kernel_tasks_group")
        batch_op.drop_column("subject")
        batch_op.drop_column("kind")
        batch_op.drop_column("group_key")
