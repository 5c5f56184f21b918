"""notifications

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 11:36:43.508404

The notifications service: notifications and their delivery state, template versions,
preferences, in-app inboxes, webhook signing secrets, event subscriptions and the rows
that make a subscription fire once per event.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orchestrion.kernel.db.base import JSONType, UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notify_inbox",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("notification_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("read_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_inbox")),
        sa.UniqueConstraint("notification_id", name=op.f("uq_notify_inbox_notification_id")),
    )
    with op.batch_alter_table("notify_inbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notify_inbox_user_created", ["tenant_id", "user_id", "created_at"], unique=False
        )

    op.create_table(
        "notify_notifications",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("to", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("template", sa.String(length=200), nullable=True),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("event", sa.String(length=100), nullable=True),
        sa.Column("subscription_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("provider_id", sa.String(length=255), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_notifications")),
    )
    with op.batch_alter_table("notify_notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notify_notifications_tenant_created", ["tenant_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_notify_notifications_tenant_status", ["tenant_id", "status"], unique=False
        )

    op.create_table(
        "notify_preferences",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("muted_channels", JSONType, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name=op.f("pk_notify_preferences")),
    )
    op.create_table(
        "notify_subscriptions",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("event", sa.String(length=100), nullable=False),
        sa.Column("workflow_id", sa.String(length=36), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("to", sa.Text(), nullable=False),
        sa.Column("template", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_subscriptions")),
    )
    with op.batch_alter_table("notify_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notify_subscriptions_tenant_event", ["tenant_id", "event"], unique=False
        )

    op.create_table(
        "notify_templates",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_templates")),
        sa.UniqueConstraint(
            "tenant_id",
            "name",
            "channel",
            "version",
            name=op.f("uq_notify_templates_tenant_id_name_channel_version"),
        ),
    )
    with op.batch_alter_table("notify_templates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notify_templates_tenant_created", ["tenant_id", "created_at"], unique=False
        )

    op.create_table(
        "notify_webhook_secrets",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_webhook_secrets")),
    )
    with op.batch_alter_table("notify_webhook_secrets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notify_webhook_secrets_tenant", ["tenant_id", "created_at"], unique=False
        )

    op.create_table(
        "notify_fired",
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("event_key", sa.String(length=200), nullable=False),
        sa.Column("notification_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["notify_subscriptions.id"],
            name=op.f("fk_notify_fired_subscription_id_notify_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscription_id", "event_key", name=op.f("pk_notify_fired")),
    )


def downgrade() -> None:
    op.drop_table("notify_fired")
    with op.batch_alter_table("notify_webhook_secrets", schema=None) as batch_op:
        batch_op.drop_index("ix_notify_webhook_secrets_tenant")

    op.drop_table("notify_webhook_secrets")
    with op.batch_alter_table("notify_templates", schema=None) as batch_op:
        batch_op.drop_index("ix_notify_templates_tenant_created")

    op.drop_table("notify_templates")
    with op.batch_alter_table("notify_subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_notify_subscriptions_tenant_event")

    op.drop_table("notify_subscriptions")
    op.drop_table("notify_preferences")
    with op.batch_alter_table("notify_notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notify_notifications_tenant_status")
        batch_op.drop_index("ix_notify_notifications_tenant_created")

    op.drop_table("notify_notifications")
    with op.batch_alter_table("notify_inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_notify_inbox_user_created")

    op.drop_table("notify_inbox")
