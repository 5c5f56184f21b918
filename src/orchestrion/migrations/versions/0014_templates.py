"""templates

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 09:00:00.000000

Workflow templates, their versions, tags and ratings. The starter templates are not rows
written here: the service seeds them at start-up, keyed by slug and version, so a newer
release upgrades them without a migration of its own.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orchestrion.kernel.db.base import JSONType, UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _content_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("parameters", JSONType, nullable=False),
        sa.Column("definition", JSONType, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "tpl_templates",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("slug", sa.String(length=100), nullable=True),
        *_content_columns(),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("rating_count", sa.Integer(), nullable=False),
        sa.Column("rating_average", sa.Float(), nullable=False),
        sa.Column("installs", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tpl_templates")),
        sa.UniqueConstraint("slug", name=op.f("uq_tpl_templates_slug")),
    )
    with op.batch_alter_table("tpl_templates", schema=None) as batch_op:
        batch_op.create_index("ix_tpl_templates_category", ["category"], unique=False)
        batch_op.create_index(
            "ix_tpl_templates_tenant_created", ["tenant_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_tpl_templates_visibility", ["visibility"], unique=False)

    op.create_table(
        "tpl_versions",
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_content_columns(),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["tpl_templates.id"],
            name=op.f("fk_tpl_versions_template_id_tpl_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("template_id", "version", name=op.f("pk_tpl_versions")),
    )

    op.create_table(
        "tpl_tags",
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["tpl_templates.id"],
            name=op.f("fk_tpl_tags_template_id_tpl_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("template_id", "tag", name=op.f("pk_tpl_tags")),
    )
    with op.batch_alter_table("tpl_tags", schema=None) as batch_op:
        batch_op.create_index("ix_tpl_tags_tag", ["tag"], unique=False)

    op.create_table(
        "tpl_ratings",
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["tpl_templates.id"],
            name=op.f("fk_tpl_ratings_template_id_tpl_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("template_id", "user_id", name=op.f("pk_tpl_ratings")),
    )


def downgrade() -> None:
    op.drop_table("tpl_ratings")
    with op.batch_alter_table("tpl_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_tpl_tags_tag")
    op.drop_table("tpl_tags")
    op.drop_table("tpl_versions")
    with op.batch_alter_table("tpl_templates", schema=None) as batch_op:
        batch_op.drop_index("ix_tpl_templates_visibility")
        batch_op.drop_index("ix_tpl_templates_tenant_created")
        batch_op.drop_index("ix_tpl_templates_category")
    op.drop_table("tpl_templates")
