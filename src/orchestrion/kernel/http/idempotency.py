"""``Idempotency-Key`` for POSTs that create work.

The same key with the same body, from the same principal, within the retention window
returns the first response; the same key with another body is a 422 (the client reused
a key by mistake). The record is written in the same transaction as the work it
describes, so a crash leaves either both or neither, and a concurrent duplicate loses
on the primary key and gets a 409 instead of doing the work twice.

A stored response may hold a secret shown once (a new API key). With a :class:`Sealing`
the body is stored encrypted (Fernet, under the platform secret) and decrypted on replay,
and the request digest is an HMAC, so neither the response nor a request that carried a
password can be read back from the table.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Integer, String, Text, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orchestrion.kernel.crypto import derive_key, rotating_fernet
from orchestrion.kernel.db.base import Base
from orchestrion.kernel.errors import BadRequest, Conflict, ValidationFailed
from orchestrion.kernel.ids import utcnow

HEADER = "idempotency-key"
RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 255
#: Marks a body stored encrypted (rows stored before sealing are plain JSON).
SEALED = "sealed:v1:"
_PURPOSE = "orchestrion-idempotency-v1"


class IdempotencyRecord(Base):
    """A stored first response, keyed by scope (principal and route) and client key."""

    __tablename__ = "kernel_idempotency_keys"

    scope: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()


def request_hash(payload: Any, *, key: bytes | None = None) -> str:
    """A digest of the request body, insensitive to key order and whitespace; keyed
    (HMAC-SHA256) when ``key`` is given, so a body holding a password cannot be guessed
    back from it."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    if key is not None:
        return hmac.new(key, canonical, hashlib.sha256).hexdigest()
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class Sealing:
    """How stored responses are kept secret: a cipher for bodies, keys for digests.

    ``cipher`` decrypts under the previous secret too (``secret_key_previous``); the
    first of ``hash_keys`` digests new requests, any of them matches a stored one.
    """

    cipher: Fernet
    hash_keys: tuple[bytes, ...]

    @classmethod
    def from_secret(cls, secret: bytes, *, previous: Iterable[bytes] = ()) -> Sealing:
        """The sealing of the platform secret (and the ones before it)."""
        older = tuple(previous)
        return cls(
            cipher=rotating_fernet(secret, purpose=_PURPOSE, previous=older),
            hash_keys=tuple(derive_key(s, purpose=f"{_PURPOSE}-hash") for s in (secret, *older)),
        )

    def seal(self, text: str) -> str:
        """``text`` encrypted, marked as such."""
        return SEALED + self.cipher.encrypt(text.encode()).decode()

    def unseal(self, stored: str) -> str:
        """The text of a stored body, sealed or (from before sealing) plain."""
        if not stored.startswith(SEALED):
            return stored
        try:
            return self.cipher.decrypt(stored.removeprefix(SEALED).encode()).decode()
        except InvalidToken:
            raise Conflict(
                "the first response to this Idempotency-Key cannot be read back (the secret "
                "key changed; set ORCHESTRION_SECRET_KEY_PREVIOUS); retry with a new key"
            ) from None


def _digests(payload: Any, sealing: Sealing | None, *, sealed_row: bool) -> list[str]:
    """The digests a stored request may carry: keyed ones, and the plain one for rows
    stored without sealing."""
    if sealing is None:
        return [request_hash(payload)]
    keyed = [request_hash(payload, key=key) for key in sealing.hash_keys]
    return keyed if sealed_row else [*keyed, request_hash(payload)]


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
    request: Request | None,
    scope: str,
    payload: Any,
    produce: Callable[[], Awaitable[tuple[int, Any]]],
    key: str | None = None,
    sealing: Sealing | None = None,
) -> Response:
    """Run ``produce`` once per key; replay its ``(status, body)`` for a repeat.

    The key is ``key`` when given (e.g. a webhook's own id), else the request's
    ``Idempotency-Key`` header (``request`` is None off HTTP, e.g. gRPC); without
    either this is just ``produce``. With ``sealing``, the stored body is encrypted and
    the request digest keyed.
    """
    if not key:
        key = idempotency_key(request) if request is not None else None
    if key is None:
        status, body = await produce()
        return JSONResponse(body, status_code=status)
    cutoff = utcnow() - RETENTION
    existing = await session.get(IdempotencyRecord, (scope, key))
    if existing is not None and existing.created_at < cutoff:
        await session.delete(existing)
        await session.flush()
        existing = None
    if existing is not None:
        sealed_row = existing.body.startswith(SEALED)
        if not any(
            hmac.compare_digest(existing.request_hash, candidate)
            for candidate in _digests(payload, sealing, sealed_row=sealed_row)
        ):
            raise ValidationFailed("this Idempotency-Key was used with a different request body")
        if sealed_row and sealing is None:
            raise Conflict("the first response to this Idempotency-Key cannot be read back")
        return Response(
            sealing.unseal(existing.body) if sealing is not None else existing.body,
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
            request_hash=_digests(payload, sealing, sealed_row=True)[0],
            status_code=status,
            body=sealing.seal(text) if sealing is not None else text,
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
