"""Signing keys: Ed25519 pairs that sign access tokens, rotated and published as JWKS.

The newest live key signs. A key is rotated out when it is older than the rotation
period (or on demand); retired keys stay in the JWKS for one access-token lifetime so
tokens they signed keep verifying until they expire. Keys are cached per process and
re-read from the database every minute, so every auth instance signs with a published key.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.ids import utcnow
from orchestrion.services.auth.models import SigningKey

ALGORITHM = "EdDSA"
_RELOAD_SECONDS = 60.0


@dataclass(frozen=True)
class ActiveKey:
    """The key that signs now."""

    kid: str
    private_key: Ed25519PrivateKey


class KeyRing:
    """Loads, creates, rotates and publishes signing keys."""

    def __init__(self, *, fernet: Fernet, rotation: timedelta, token_ttl: timedelta) -> None:
        self.fernet = fernet
        self.rotation = rotation
        self.token_ttl = token_ttl
        self._active: ActiveKey | None = None
        self._loaded_at = float("-inf")

    def _create(self, session: AsyncSession) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        kid = uuid.uuid4().hex
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
        jwk.update(kid=kid, use="sig", alg=ALGORITHM)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        row = SigningKey(kid=kid, private_key=self.fernet.encrypt(pem).decode(), public_jwk=jwk)
        session.add(row)
        return row

    def _load(self, row: SigningKey) -> ActiveKey:
        pem = self.fernet.decrypt(row.private_key.encode())
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise TypeError(f"signing key {row.kid} is not Ed25519")
        return ActiveKey(kid=row.kid, private_key=private)

    async def active(self, session: AsyncSession) -> ActiveKey:
        """The signing key, creating or rotating it when due."""
        if self._active is not None and time.monotonic() - self._loaded_at < _RELOAD_SECONDS:
            return self._active
        result = await session.execute(
            select(SigningKey)
            .where(SigningKey.retired_at.is_(None))
            .order_by(SigningKey.created_at.desc())
            .limit(1)
        )
        row = result.scalar_one_or_none()
        if row is None or utcnow() - row.created_at > self.rotation:
            row = await self.rotate(session)
        self._active = self._load(row)
        self._loaded_at = time.monotonic()
        return self._active

    async def rotate(self, session: AsyncSession) -> SigningKey:
        """Retire every live key and make a new one (old ones stay published a while)."""
        now = utcnow()
        live = await session.execute(select(SigningKey).where(SigningKey.retired_at.is_(None)))
        for row in live.scalars():
            row.retired_at = now
        row = self._create(session)
        await session.flush()
        self._active = None
        return row

    async def jwks(self, session: AsyncSession) -> dict[str, Any]:
        """Every key a valid token may have been signed with."""
        horizon = utcnow() - self.token_ttl - timedelta(minutes=5)
        result = await session.execute(
            select(SigningKey)
            .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > horizon))
            .order_by(SigningKey.created_at.desc())
        )
        return {"keys": [row.public_jwk for row in result.scalars()]}

    async def sign(self, session: AsyncSession, claims: dict[str, Any]) -> str:
        """``claims`` signed with the active key, its ``kid`` in the header."""
        key = await self.active(session)
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
