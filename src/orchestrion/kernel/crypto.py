"""Encryption at rest for the few secrets the platform must read back.

Every key is derived from the platform secret (``ORCHESTRION_SECRET_KEY``) and a
``purpose``. When the secret is rotated, the old one goes to
``ORCHESTRION_SECRET_KEY_PREVIOUS``: :func:`rotating_fernet` then encrypts under the new
secret and still decrypts what the old one encrypted.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


def derive_key(secret: bytes, *, purpose: str) -> bytes:
    """32 bytes derived from ``secret``, different for every ``purpose``."""
    return hashlib.sha256(purpose.encode() + b":" + secret).digest()


def fernet_for(secret: bytes, *, purpose: str) -> Fernet:
    """A Fernet cipher keyed by the platform secret, separate per ``purpose``.

    Deriving one key per purpose means a ciphertext of one kind (a signing key) can
    never be decrypted as another (a webhook secret).
    """
    return Fernet(base64.urlsafe_b64encode(derive_key(secret, purpose=purpose)))


class RotatingFernet(Fernet):
    """A :class:`Fernet` that encrypts under the current secret and decrypts under the
    current or any previous one (a :class:`MultiFernet` where a ``Fernet`` is expected)."""

    def __init__(self, current: Fernet, key: bytes, previous: Iterable[Fernet]) -> None:
        super().__init__(key)
        self._all = MultiFernet([current, *previous])

    def decrypt(self, token: bytes | str, ttl: int | None = None) -> bytes:
        """The plaintext of ``token``, encrypted under any of the secrets."""
        return self._all.decrypt(token, ttl)

    def decrypt_at_time(self, token: bytes | str, ttl: int, current_time: int) -> bytes:
        """As :meth:`decrypt`, at ``current_time``."""
        return self._all.decrypt_at_time(token, ttl, current_time)

    def extract_timestamp(self, token: bytes | str) -> int:
        """When ``token`` was made, whichever secret made it."""
        return self._all.extract_timestamp(token)

    def rotate(self, token: bytes | str) -> bytes:
        """``token`` encrypted again under the current secret."""
        return self._all.rotate(token)


def rotating_fernet(secret: bytes, *, purpose: str, previous: Iterable[bytes] = ()) -> Fernet:
    """The cipher of ``purpose``: encrypts under ``secret``, decrypts under it or any of
    the ``previous`` secrets (so data written before a rotation stays readable)."""
    key = base64.urlsafe_b64encode(derive_key(secret, purpose=purpose))
    older = [fernet_for(old, purpose=purpose) for old in previous if old and old != secret]
    if not older:
        return Fernet(key)
    return RotatingFernet(Fernet(key), key, older)


def read_secret_file(path: Path) -> str | None:
    """The secret kept in ``path`` (see :func:`create_secret_file`), if there is one."""
    try:
        value = path.read_text("utf-8").strip()
    except FileNotFoundError:
        return None
    return value or None


def create_secret_file(path: Path) -> str:
    """A new random secret written to ``path``, readable by its owner only (0600).

    Created exclusively: if another process wrote one first, that one is returned, so
    two processes starting together agree on one secret.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing = read_secret_file(path)
        if existing is None:
            raise
        return existing
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


__all__ = [
    "InvalidToken",
    "RotatingFernet",
    "create_secret_file",
    "derive_key",
    "fernet_for",
    "read_secret_file",
    "rotating_fernet",
]
