"""Password hashing, token digests and encryption at rest.

Passwords: argon2id (argon2-cffi), run in a worker thread so a login never blocks the
event loop. Refresh tokens and API key secrets are long random strings, so a plain
SHA-256 digest is enough to store them (no dictionary to attack). Signing keys are
encrypted with Fernet under a key derived from the platform secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet

from orchestrion.kernel.crypto import rotating_fernet

_hasher = PasswordHasher()
# Verified when the email is unknown, so a login takes as long whether or not it exists.
_DUMMY_HASH = _hasher.hash("orchestrion-timing-equaliser")


async def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; constant work when there is no hash."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def digest(token: str) -> str:
    """The hex SHA-256 of a high-entropy token."""
    return hashlib.sha256(token.encode()).hexdigest()


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random string."""
    return secrets.token_urlsafe(nbytes)


def fernet_for(secret: bytes, *, previous: Iterable[bytes] = ()) -> Fernet:
    """The cipher of signing keys at rest (reads keys written under ``previous`` too)."""
    return rotating_fernet(secret, purpose="orchestrion-auth-keys-v1", previous=previous)
