"""personal data erasures

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-12 10:00:00.000000

``auth_erasures``: the users (and their API keys) erased, by a SHA-256 of their id, with
the pseudonym their audit lines carry, so an audit line arriving after the erasure is
appended anonymised and an export after it reports the erasure.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orchestrion.kernel.db.base import UTCDateTime

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_erasures",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=True),
        sa.Column("actor", sa.String(length=36), nullable=False),
        sa.Column("erased_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_auth_erasures")),
    )


def downgrade() -> None:
    op.drop_table("auth_erasures")
