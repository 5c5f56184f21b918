"""sso

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 18:20:00.000000

Single sign-on with OpenID Connect providers: sign-ins under way (state, nonce, PKCE
verifier), one-time codes for the frontend, and the provider accounts linked to users.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orchestrion.kernel.db.base import UTCDateTime

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_sso_states",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("browser_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=63), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("callback_uri", sa.Text(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sso_states")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_auth_sso_states_state_hash")),
    )
    op.create_index(
        op.f("ix_auth_sso_states_expires_at"), "auth_sso_states", ["expires_at"], unique=False
    )
    op.create_table(
        "auth_sso_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=63), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth_users.id"],
            name=op.f("fk_auth_sso_codes_user_id_auth_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sso_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_auth_sso_codes_code_hash")),
    )
    op.create_index(
        op.f("ix_auth_sso_codes_expires_at"), "auth_sso_codes", ["expires_at"], unique=False
    )
    op.create_index(op.f("ix_auth_sso_codes_user_id"), "auth_sso_codes", ["user_id"], unique=False)
    op.create_table(
        "auth_sso_identities",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=63), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_login_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth_users.id"],
            name=op.f("fk_auth_sso_identities_user_id_auth_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sso_identities")),
        sa.UniqueConstraint(
            "provider", "subject", name=op.f("uq_auth_sso_identities_provider_subject")
        ),
    )
    op.create_index(
        op.f("ix_auth_sso_identities_user_id"), "auth_sso_identities", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_auth_sso_identities_user_id"), table_name="auth_sso_identities")
    op.drop_table("auth_sso_identities")
    op.drop_index(op.f("ix_auth_sso_codes_user_id"), table_name="auth_sso_codes")
    op.drop_index(op.f("ix_auth_sso_codes_expires_at"), table_name="auth_sso_codes")
    op.drop_table("auth_sso_codes")
    op.drop_index(op.f("ix_auth_sso_states_expires_at"), table_name="auth_sso_states")
    op.drop_table("auth_sso_states")
