"""hmac keys

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 10:00:00.000000

Signed requests (``Orchestrion-HMAC``): keys whose secrets are kept encrypted (the
server recomputes each signature), and the signatures accepted within the replay window.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orchestrion.kernel.db.base import JSONType, UTCDateTime

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_hmac_keys",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("scopes", JSONType, nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["auth_tenants.id"],
            name=op.f("fk_auth_hmac_keys_tenant_id_auth_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth_users.id"],
            name=op.f("fk_auth_hmac_keys_user_id_auth_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_hmac_keys")),
    )
    op.create_index(
        "ix_auth_hmac_keys_tenant_created",
        "auth_hmac_keys",
        ["tenant_id", "created_at"],
        unique=False,
    )
    op.create_index(op.f("ix_auth_hmac_keys_user_id"), "auth_hmac_keys", ["user_id"], unique=False)
    op.create_table(
        "auth_hmac_signatures",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_auth_hmac_signatures")),
    )
    op.create_index(
        op.f("ix_auth_hmac_signatures_expires_at"),
        "auth_hmac_signatures",
        ["expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_auth_hmac_signatures_expires_at"), table_name="auth_hmac_signatures")
    op.drop_table("auth_hmac_signatures")
    op.drop_index(op.f("ix_auth_hmac_keys_user_id"), table_name="auth_hmac_keys")
    op.drop_index("ix_auth_hmac_keys_tenant_created", table_name="auth_hmac_keys")
    op.drop_table("auth_hmac_keys")
