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


class _Hashing:
    """The process's argon2id hasher, with the costs the settings give (see
    :func:`configure_hashing`), and a hash verified when an email is unknown, so that a
    login takes as long whether or not the account exists."""

    def __init__(self) -> None:
        self.hasher = PasswordHasher()
        self._dummy: str | None = None

    def configure(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        params = self.hasher
        if (params.time_cost, params.memory_cost, params.parallelism) == (
            time_cost,
            memory_kib,
            parallelism,
        ):
            return
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        self._dummy = None

    def dummy(self) -> str:
        # Made on first use (not at import: every process importing this would pay it).
        if self._dummy is None:
            self._dummy = self.hasher.hash("orchestrion-timing-equaliser")
        return self._dummy


_hashing = _Hashing()


def configure_hashing(*, time_cost: int, memory_kib: int, parallelism: int) -> None:
    """Make new hashes with these argon2id costs (the auth service does, from settings)."""
    _hashing.configure(time_cost=time_cost, memory_kib=memory_kib, parallelism=parallelism)


async def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return await asyncio.to_thread(_hashing.hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; constant work when there is no hash."""

    def check() -> bool:
        hasher = _hashing.hasher
        try:
            return hasher.verify(password_hash or _hashing.dummy(), password) and bool(
                password_hash
            )
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
