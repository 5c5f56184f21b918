"""Signing keys: Ed25519 pairs that sign access tokens, rotated and published as JWKS.

A rotation never breaks a token. A new key is *published* first (in the JWKS) and
*signs* only from ``activates_at``, ``publish_ahead`` later, so every gateway can
learn it before the first token it signs arrives. When it activates, older keys are
retired but stay published for one access-token lifetime, so the tokens they signed
keep verifying until they expire. The active key is cached per process and re-read
from the database every few seconds, so every auth instance converges on one key.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrion.kernel.ids import utcnow
from orchestrion.services.auth.models import SigningKey

ALGORITHM = "EdDSA"
_RELOAD_SECONDS = 10.0


class UnreadableSigningKey(RuntimeError):
    """A stored signing key does not decrypt: the secret key changed without its
    predecessor being kept in ``ORCHESTRION_SECRET_KEY_PREVIOUS``."""

    def __init__(self, kid: str) -> None:
        super().__init__(
            f"signing key {kid} cannot be decrypted: the secret key changed. Set "
            "ORCHESTRION_SECRET_KEY_PREVIOUS to the secret it was written under (or restore "
            "ORCHESTRION_SECRET_KEY), then rotate the signing keys."
        )


@dataclass(frozen=True)
class ActiveKey:
    """The key that signs now."""

    kid: str
    private_key: Ed25519PrivateKey


class KeyRing:
    """Creates, rotates, loads and publishes signing keys."""

    def __init__(
        self,
        *,
        fernet: Fernet,
        rotation: timedelta,
        token_ttl: timedelta,
        publish_ahead: timedelta = timedelta(seconds=30),
    ) -> None:
        self.fernet = fernet
        self.rotation = rotation
        self.token_ttl = token_ttl
        self.publish_ahead = publish_ahead
        self._active: ActiveKey | None = None
        self._loaded_at = float("-inf")

    def _create(self, session: AsyncSession, *, activates_at: datetime) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        kid = uuid.uuid4().hex
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
        jwk.update(kid=kid, use="sig", alg=ALGORITHM)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        row = SigningKey(
            kid=kid,
            private_key=self.fernet.encrypt(pem).decode(),
            public_jwk=jwk,
            activates_at=activates_at,
        )
        session.add(row)
        return row

    def _load(self, row: SigningKey) -> ActiveKey:
        try:
            pem = self.fernet.decrypt(row.private_key.encode())
        except InvalidToken:
            raise UnreadableSigningKey(row.kid) from None
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise TypeError(f"signing key {row.kid} is not Ed25519")
        return ActiveKey(kid=row.kid, private_key=private)

    async def _live(self, session: AsyncSession) -> list[SigningKey]:
        result = await session.execute(
            select(SigningKey)
            .where(SigningKey.retired_at.is_(None))
            .order_by(SigningKey.activates_at.desc(), SigningKey.created_at.desc())
        )
        return list(result.scalars())

    async def active(self, session: AsyncSession) -> ActiveKey:
        """The signing key: the newest activated one; schedules the next when due."""
        if self._active is not None and time.monotonic() - self._loaded_at < _RELOAD_SECONDS:
            return self._active
        now = utcnow()
        live = await self._live(session)
        activated = [row for row in live if row.activates_at <= now]
        if not activated:
            # The very first key: nothing was signed before it, so it may sign at once.
            current = self._create(session, activates_at=now)
            await session.flush()
        else:
            current = activated[0]
            await session.execute(
                update(SigningKey)
                .where(
                    SigningKey.retired_at.is_(None), SigningKey.activates_at < current.activates_at
                )
                .values(retired_at=now)
            )
            pending = any(row.activates_at > now for row in live)
            if not pending and now - current.activates_at > self.rotation:
                self._create(session, activates_at=now + self.publish_ahead)
                await session.flush()
        self._active = self._load(current)
        self._loaded_at = time.monotonic()
        return self._active

    async def check_readable(self, session: AsyncSession) -> None:
        """Raise :class:`UnreadableSigningKey` unless every live key decrypts."""
        for row in await self._live(session):
            self._load(row)

    async def rotate(self, session: AsyncSession) -> SigningKey:
        """Publish a new key now; it signs once ``publish_ahead`` has passed."""
        row = self._create(session, activates_at=utcnow() + self.publish_ahead)
        await session.flush()
        self._active = None  # re-read at the next signature
        return row

    async def jwks(self, session: AsyncSession) -> dict[str, Any]:
        """Every key that signs, will sign soon, or signed a token that is still valid."""
        horizon = utcnow() - self.token_ttl - timedelta(minutes=5)
        result = await session.execute(
            select(SigningKey)
            .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > horizon))
            .order_by(SigningKey.activates_at.desc())
        )
        return {"keys": [row.public_jwk for row in result.scalars()]}

    async def sign(self, session: AsyncSession, claims: dict[str, Any]) -> str:
        """``claims`` signed with the active key, its ``kid`` in the header."""
        key = await self.active(session)
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
