"""Rebuilding the projections from scratch by replaying every execution's log.

The log is read through the workflows service's public API, as any client would:
``GET /api/v1/executions`` (every tenant's, oldest first, by cursor) and
``GET /api/v1/executions/{id}/events``; the tenants come from the auth service's
``GET /api/v1/auth/tenants``. Requests carry a signed identity (``kernel.auth.identity``)
of a principal of each tenant holding only ``executions:read`` (and, to list the
tenants, ``platform:admin``). Never the workflows tables: the service owns them.

The projections are emptied first (SLO definitions stay), then each execution's entries
are applied in one transaction with the same code as the live projector. Entries are
identified by ``(execution, seq)``, so live events arriving during a rebuild count once
whichever path applies them first. SLO states are settled once at the end (a state that
flips publishes its event, as live).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from orchestrion.kernel.auth.identity import IDENTITY_HEADER, encode_identity
from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.errors import UpstreamError
from orchestrion.kernel.ids import utcnow
from orchestrion.services.analytics import repository, slos
from orchestrion.services.analytics.projection import ExecutionEvent, LogEntry, project_many

SUBJECT = "analytics:rebuild"
PAGE = 100


class RebuildFailed(UpstreamError):
    """A service answered the rebuild's reads with an error."""


@dataclass
class Rebuilt:
    """What a rebuild replayed."""

    tenants: int = 0
    executions: int = 0
    events: int = 0


class _Reader:
    def __init__(self, client: httpx.AsyncClient, secret: bytes) -> None:
        self.client = client
        self.secret = secret

    async def get(self, path: str, *, tenant_id: str, admin: bool = False, **params: Any) -> Any:
        permissions = {Permission.EXECUTIONS_READ}
        if admin:
            permissions.add(Permission.PLATFORM_ADMIN)
        principal = Principal(
            subject=SUBJECT, tenant_id=tenant_id, permissions=frozenset(permissions)
        )
        headers = {IDENTITY_HEADER: encode_identity(principal, self.secret)}
        response = await self.client.get(path, params=params, headers=headers)
        if response.status_code != 200:
            raise RebuildFailed(
                f"GET {path} answered {response.status_code}: {response.text[:300]}"
            )
        return response.json()


async def tenant_ids(auth: httpx.AsyncClient, secret: bytes) -> list[str]:
    """Every tenant's id, from the auth service."""
    reader = _Reader(auth, secret)
    found: list[str] = []
    page = 1
    while True:
        body = await reader.get(
            "/api/v1/auth/tenants", tenant_id="-", admin=True, page=page, limit=PAGE
        )
        found.extend(str(item["id"]) for item in body["data"])
        if not body["links"].get("next"):
            return found
        page += 1


async def _executions(reader: _Reader, tenant_id: str) -> AsyncIterator[dict[str, Any]]:
    cursor = ""
    while True:
        body = await reader.get(
            "/api/v1/executions",
            tenant_id=tenant_id,
            limit=PAGE,
            sort="created_at:asc",
            fields="id,workflow_id",
            cursor=cursor,
        )
        for item in body["data"]:
            yield item
        cursor = body["meta"].get("next_cursor") or ""
        if not cursor:
            return


async def _entries(reader: _Reader, tenant_id: str, execution_id: str) -> list[LogEntry]:
    entries: list[LogEntry] = []
    after = 0
    while True:
        body = await reader.get(
            f"/api/v1/executions/{execution_id}/events",
            tenant_id=tenant_id,
            after=after,
            limit=1000,
        )
        page = [LogEntry.model_validate(item) for item in body["data"]]
        entries.extend(page)
        if not page or not body["links"].get("next"):
            return entries
        after = page[-1].seq


async def rebuild(
    database: Database,
    *,
    workflows: httpx.AsyncClient,
    auth: httpx.AsyncClient | None,
    secret: bytes,
    tenants: list[str] | None = None,
) -> Rebuilt:
    """Empty the projections and replay every execution of ``tenants`` (default: all)."""
    if tenants is None:
        if auth is None:
            raise ValueError("without the auth service, name the tenants to rebuild")
        tenants = await tenant_ids(auth, secret)
    async with database.session() as session:
        await repository.clear_projections(session)
    done = Rebuilt(tenants=len(tenants))
    reader = _Reader(workflows, secret)
    for tenant_id in tenants:
        async for execution in _executions(reader, tenant_id):
            entries = await _entries(reader, tenant_id, str(execution["id"]))
            events = [
                ExecutionEvent(
                    tenant_id=tenant_id,
                    execution_id=str(execution["id"]),
                    workflow_id=str(execution["workflow_id"]),
                    event=entry,
                )
                for entry in entries
            ]
            async with database.session() as session:
                await project_many(session, events)
            done.executions += 1
            done.events += len(entries)
    async with database.session() as session:
        now = utcnow()
        for slo in (await session.execute(repository.slos_of(None))).scalars():
            if slo.tenant_id in tenants:
                await slos.settle(session, slo, now=now)
    return done
