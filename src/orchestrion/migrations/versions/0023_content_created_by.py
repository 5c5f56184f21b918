"""content created_by

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-13 10:00:00.000000

Who uploaded a document or a plugin (the principal's subject), so a person's export
finds them and their erasure anonymises them. Rows older than the column stay NULL: no
one is known to have made them. Indexed, since the export and the erasure look a person
up across every tenant and these tables hold the documents' and modules' bytes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("content_documents", "content_plugins")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("created_by", sa.String(length=255), nullable=True))
            batch_op.create_index(f"ix_{table}_created_by", ["created_by"], unique=False)


def downgrade() -> None:
    for table in reversed(_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_created_by")
            batch_op.drop_column("created_by")
