"""Encryption at rest for the few secrets the platform must read back."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet


def fernet_for(secret: bytes, *, purpose: str) -> Fernet:
    """A Fernet cipher keyed by the platform secret, separate per ``purpose``.

    Deriving one key per purpose means a ciphertext of one kind (a signing key) can
    never be decrypted as another (a webhook secret).
    """
    key = hashlib.sha256(purpose.encode() + b":" + secret).digest()
    return Fernet(base64.urlsafe_b64encode(key))
