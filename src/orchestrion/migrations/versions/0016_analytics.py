"""analytics

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 12:00:00.000000

The analytics service's projections of execution events (per execution, per hour, the
duration sketch's bins, model usage) and its SLOs.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orchestrion.kernel.db.base import JSONType, UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BUCKET_KEY = ("tenant_id", "workflow_id", "bucket_at")


def _key_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("workflow_id", sa.String(length=36), nullable=False),
        sa.Column("bucket_at", UTCDateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "analytics_executions",
        sa.Column("execution_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("workflow_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_seq", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("bucket_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("steps_total", sa.Integer(), nullable=False),
        sa.Column("steps_failed", sa.Integer(), nullable=False),
        sa.Column("models", JSONType, nullable=False),
        sa.Column("seq_done", sa.Integer(), nullable=False),
        sa.Column("seq_extra", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("execution_id", name=op.f("pk_analytics_executions")),
    )
    with op.batch_alter_table("analytics_executions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_analytics_executions_tenant_bucket", ["tenant_id", "bucket_at"], unique=False
        )
        batch_op.create_index(
            "ix_analytics_executions_tenant_finished", ["tenant_id", "finished_at"], unique=False
        )

    op.create_table(
        "analytics_buckets",
        *_key_columns(),
        sa.Column("executions", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("durations", sa.Integer(), nullable=False),
        sa.Column("duration_sum_ms", sa.Float(), nullable=False),
        sa.Column("steps_total", sa.Integer(), nullable=False),
        sa.Column("steps_failed", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(*_BUCKET_KEY, name=op.f("pk_analytics_buckets")),
    )
    with op.batch_alter_table("analytics_buckets", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_buckets_bucket", ["bucket_at"], unique=False)

    op.create_table(
        "analytics_duration_bins",
        *_key_columns(),
        sa.Column("bin", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*_BUCKET_KEY, "bin", name=op.f("pk_analytics_duration_bins")),
    )

    op.create_table(
        "analytics_model_usage",
        *_key_columns(),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(*_BUCKET_KEY, "model", name=op.f("pk_analytics_model_usage")),
    )

    op.create_table(
        "analytics_slos",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("workflow_id", sa.String(length=36), nullable=True),
        sa.Column("objective", sa.String(length=32), nullable=False),
        sa.Column("target", sa.Float(), nullable=False),
        sa.Column("window", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_changed_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_slos")),
    )
    with op.batch_alter_table("analytics_slos", schema=None) as batch_op:
        batch_op.create_index("ix_analytics_slos_tenant", ["tenant_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("analytics_slos", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_slos_tenant")
    op.drop_table("analytics_slos")
    op.drop_table("analytics_model_usage")
    op.drop_table("analytics_duration_bins")
    with op.batch_alter_table("analytics_buckets", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_buckets_bucket")
    op.drop_table("analytics_buckets")
    with op.batch_alter_table("analytics_executions", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_executions_tenant_finished")
        batch_op.drop_index("ix_analytics_executions_tenant_bucket")
    op.drop_table("analytics_executions")
