"""``Idempotency-Key`` for POSTs that create work.

The same key with the same body, from the same principal, within the retention window
returns the first response; the same key with another body is a 422 (the client reused
a key by mistake). The record is written in the same transaction as the work it
describes, so a crash leaves either both or neither, and a concurrent duplicate loses
on the primary key and gets a 409 instead of doing the work twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, Text, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orchestrion.kernel.db.base import Base
from orchestrion.kernel.errors import BadRequest, Conflict, ValidationFailed
from orchestrion.kernel.ids import utcnow

HEADER = "idempotency-key"
RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class IdempotencyRecord(Base):
    """A stored first response, keyed by scope (principal and route) and client key."""

    __tablename__ = "kernel_idempotency_keys"

    scope: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()


def request_hash(payload: Any) -> str:
    """A digest of the request body, insensitive to key order and whitespace."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key(request: Request) -> str | None:
    """The request's key, checked for length."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
    return key


async def run_idempotent(
    session: AsyncSession,
    *,
    request: Request,
    scope: str,
    payload: Any,
    produce: Callable[[], Awaitable[tuple[int, Any]]],
    key: str | None = None,
) -> Response:
    """Run ``produce`` once per key; replay its ``(status, body)`` for a repeat.

    The key is ``key`` when given (e.g. a webhook's own id), else the request's
    ``Idempotency-Key`` header; without either this is just ``produce``.
    """
    key = key or idempotency_key(request)
    if key is None:
        status, body = await produce()
        return JSONResponse(body, status_code=status)
    digest = request_hash(payload)
    cutoff = utcnow() - RETENTION
    existing = await session.get(IdempotencyRecord, (scope, key))
    if existing is not None and existing.created_at < cutoff:
        await session.delete(existing)
        await session.flush()
        existing = None
    if existing is not None:
        if existing.request_hash != digest:
            raise ValidationFailed("this Idempotency-Key was used with a different request body")
        return Response(
            existing.body,
            status_code=existing.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    status, body = await produce()
    text = json.dumps(body, default=str)
    session.add(
        IdempotencyRecord(
            scope=scope,
            key=key,
            request_hash=digest,
            status_code=status,
            body=text,
            created_at=utcnow(),
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("a request with this Idempotency-Key is already being processed") from None
    return Response(text, status_code=status, media_type="application/json")


async def purge_expired(session: AsyncSession) -> int:
    """Delete records past the retention window; returns how many."""
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - RETENTION)
    )
    return int(getattr(result, "rowcount", 0) or 0)
