"""Database layer: SQLAlchemy 2 async on SQLite (embedded) or PostgreSQL (distributed)."""

from orchestrion.kernel.db.base import Base, TimestampMixin, UTCDateTime
from orchestrion.kernel.db.engine import Database, is_sqlite

__all__ = ["Base", "Database", "TimestampMixin", "UTCDateTime", "is_sqlite"]
