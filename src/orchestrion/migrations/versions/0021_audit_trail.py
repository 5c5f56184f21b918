"""audit trail

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 10:00:00.000000

One audit trail for every service, kept by auth: who acted (user or API key) from where
(address, user agent, request id), which service recorded it, and a SHA-256 chain per
tenant (``chain``, ``seq``, ``hash``; personal fields enter it by ``personal_digest``).
``auth_audit_heads`` holds each chain's end, locked by appends, and the anchor retention
leaves. Lines written before this revision stay outside any chain.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orchestrion.kernel.db.base import UTCDateTime

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_audit_heads",
        sa.Column("chain", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("anchor_seq", sa.BigInteger(), nullable=False),
        sa.Column("anchor_hash", sa.String(length=64), nullable=False),
        sa.Column("pruned_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_auth_audit_heads")),
    )
    with op.batch_alter_table("auth_audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor_type", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("user_agent", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("request_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("service", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("chain", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("personal_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("erased_at", UTCDateTime(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_auth_audit_events_chain_seq"), ["chain", "seq"]
        )
        batch_op.create_index(
            batch_op.f("ix_auth_audit_events_actor_id"), ["actor_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("auth_audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_audit_events_actor_id"))
        batch_op.drop_constraint(batch_op.f("uq_auth_audit_events_chain_seq"), type_="unique")
        for column in (
            "erased_at",
            "hash",
            "personal_digest",
            "seq",
            "chain",
            "service",
            "request_id",
            "user_agent",
            "actor_type",
        ):
            batch_op.drop_column(column)
    op.drop_table("auth_audit_heads")
