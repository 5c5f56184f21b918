"""Queries of the audit trail."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, or_, select

from orchestrion.kernel.http.lists import ListSpec, equals
from orchestrion.services.auth.models import AuditEvent


def resource_filter(value: str) -> ColumnElement[bool]:
    """``resource=workflow`` (every workflow) or ``resource=workflow/<id>`` (one); like
    every filter, an empty value matches nothing rather than being refused."""
    kind, _, ident = value.partition("/")
    if not ident:
        return AuditEvent.target_type == kind
    return and_(AuditEvent.target_type == kind, AuditEvent.target_id == ident)


#: An audit line's fields, in the order a CSV export writes them (``data`` last).
COLUMNS = (
    "id",
    "time",
    "tenant_id",
    "actor_id",
    "actor_type",
    "action",
    "resource_type",
    "resource_id",
    "ip",
    "user_agent",
    "request_id",
    "service",
    "seq",
    "hash",
    "erased",
    "data",
)
FIELDS = frozenset(COLUMNS)
TRAIL_LIST = ListSpec(
    sortable={"time": AuditEvent.created_at, "action": AuditEvent.action},
    filters={
        "actor": equals(AuditEvent.actor_id),
        "action": equals(AuditEvent.action),
        "resource": resource_filter,
        "service": equals(AuditEvent.service),
        "request_id": equals(AuditEvent.request_id),
    },
    fields=FIELDS,
    default_sort="time:desc",
    id_column=AuditEvent.id,
)


def trail_in(tenant_id: str | None) -> Select[AuditEvent]:
    """Lines of a tenant (every tenant when None)."""
    stmt = select(AuditEvent)
    return stmt if tenant_id is None else stmt.where(AuditEvent.tenant_id == tenant_id)


def export_batch(
    tenant_id: str | None,
    filters: list[ColumnElement[bool]],
    *,
    after: tuple[object, str] | None,
    limit: int,
) -> Select[AuditEvent]:
    """The next ``limit`` lines to export, oldest first, after ``(time, id)``."""
    stmt = trail_in(tenant_id).where(*filters)
    if after is not None:
        moment, ident = after
        stmt = stmt.where(
            or_(
                AuditEvent.created_at > moment,
                and_(AuditEvent.created_at == moment, AuditEvent.id > ident),
            )
        )
    return stmt.order_by(AuditEvent.created_at, AuditEvent.id).limit(limit)
