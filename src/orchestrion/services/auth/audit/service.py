"""The rules of the audit trail: who may read which lines, exports, verification."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import ColumnElement

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.csvsafe import SafeWriter
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import BadRequest
from orchestrion.kernel.ids import isoformat
from orchestrion.services.auth.audit import chain, repository
from orchestrion.services.auth.models import AuditEvent

EXPORT_BATCH = 500
EXPORT_FILTERS = ("actor", "action", "resource", "service", "request_id")


def scope_of(principal: Principal, tenant_id: str | None = None) -> str | None:
    """The tenant whose lines the caller reads: their own; any (or all, None) for a
    platform admin."""
    if principal.is_platform_admin:
        return tenant_id
    return principal.tenant_id


def line_to_dict(line: AuditEvent) -> dict[str, Any]:
    """The public shape of an audit line."""
    return {
        "id": line.id,
        "time": isoformat(line.created_at),
        "tenant_id": line.tenant_id,
        "actor_id": line.actor_id,
        "actor_type": line.actor_type,
        "action": line.action,
        "resource_type": line.target_type,
        "resource_id": line.target_id,
        "ip": line.ip,
        "user_agent": line.user_agent,
        "request_id": line.request_id,
        "service": line.service,
        "data": line.data or {},
        "seq": line.seq,
        "hash": line.hash,
        "erased": line.erased_at is not None,
    }


def export_filters(params: dict[str, str]) -> list[ColumnElement[bool]]:
    """The export's filters (those of the list); 400 on an unknown parameter."""
    unknown = sorted(set(params) - {*EXPORT_FILTERS, "format"})
    if unknown:
        raise BadRequest(
            f"unknown parameter(s): {', '.join(unknown)}; filters: {', '.join(EXPORT_FILTERS)}",
            errors=[{"loc": ["query", name], "msg": "unknown parameter"} for name in unknown],
        )
    return [
        repository.TRAIL_LIST.filters[name](value)
        for name, value in params.items()
        if name in EXPORT_FILTERS
    ]


async def _lines(
    database: Database, tenant_id: str | None, filters: list[ColumnElement[bool]]
) -> AsyncIterator[AuditEvent]:
    # A session per batch: a long download must not hold SQLite's writer lock.
    after: tuple[object, str] | None = None
    while True:
        async with database.session() as session:
            stmt = repository.export_batch(tenant_id, filters, after=after, limit=EXPORT_BATCH)
            rows = list((await session.execute(stmt)).scalars())
        for row in rows:
            yield row
        if len(rows) < EXPORT_BATCH:
            return
        after = (rows[-1].created_at, rows[-1].id)


async def export_json(
    database: Database, *, tenant_id: str | None, filters: list[ColumnElement[bool]]
) -> AsyncIterator[bytes]:
    """The lines as one JSON array, oldest first, a line at a time."""
    yield b"["
    first = True
    async for line in _lines(database, tenant_id, filters):
        prefix = b"" if first else b","
        first = False
        yield prefix + json.dumps(line_to_dict(line), ensure_ascii=False).encode() + b"\n"
    yield b"]\n"


async def export_csv(
    database: Database, *, tenant_id: str | None, filters: list[ColumnElement[bool]]
) -> AsyncIterator[bytes]:
    """The lines as CSV with a header row, oldest first (``data`` as JSON); a text cell
    that a spreadsheet would run as a formula is quoted (``kernel.csvsafe``)."""
    buffer = io.StringIO()
    writer = SafeWriter(buffer)

    def take() -> bytes:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text.encode()

    writer.writerow(repository.COLUMNS)
    yield take()
    async for line in _lines(database, tenant_id, filters):
        row = line_to_dict(line)
        row["data"] = json.dumps(row["data"], ensure_ascii=False, sort_keys=True)
        writer.writerow(["" if row[c] is None else row[c] for c in repository.COLUMNS])
        yield take()


async def verify(database: Database, *, tenant_id: str | None) -> dict[str, Any]:
    """Recompute the chains of a tenant (of every tenant when None)."""
    async with database.session() as session:
        names = await chain.chains(session, tenant_id=tenant_id)
    verdicts = []
    for name in names:
        # A session per chain: a long chain must not hold SQLite's writer lock for all.
        async with database.session() as session:
            verdicts.append((await chain.verify_chain(session, chain=name)).to_dict())
    return {"ok": all(v["ok"] for v in verdicts), "chains": verdicts}
